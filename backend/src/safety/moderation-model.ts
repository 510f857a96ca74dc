import type { LlmProvider } from '../llm/types.js';
import { withTimeout } from '../shared/with-timeout.js';
import type { SafetyCategory } from './types.js';

export type ModerationOutcome =
  | { outcome: 'unsafe'; category: SafetyCategory }
  | { outcome: 'safe' }
  | { outcome: 'timeout' | 'error' };

export interface ModerationModel {
  /** The model's reading of the user's recent turns; it never throws. */
  classify(texts: readonly string[]): Promise<ModerationOutcome>;
}

export interface ModerationModelOptions {
  /** A provider adapter (groq-provider.ts) for SAFETY_MODEL, e.g. a Llama Guard model. */
  provider: LlmProvider;
  timeoutMs: number;
}

/**
 * Llama Guard's hazard codes that mean a person may be in crisis: S11 suicide
 * and self-harm; S1 violent crimes and S3/S4 sex crimes and child exploitation,
 * which from a user are most often about what is happening to them. Other
 * codes (hate, elections, code abuse…) are not a crisis and leave the coach to answer.
 */
const CRISIS_CODES: Readonly<Record<string, SafetyCategory>> = {
  S11: 'suicide',
  S1: 'danger',
  S3: 'danger',
  S4: 'danger',
};

/** "safe" · "unsafe\nS11" · "unsafe\nS1,S11" (Llama Guard's output) → a verdict. */
export function parseModeration(text: string): ModerationOutcome {
  const [first = '', ...rest] = text.trim().toLowerCase().split(/\s+/);
  if (first === 'safe') {
    return { outcome: 'safe' };
  }
  if (first !== 'unsafe') {
    return { outcome: 'error' };
  }
  const codes = rest
    .join(',')
    .toUpperCase()
    .split(/[,\s]+/)
    .filter(Boolean);
  if (codes.length === 0) {
    // A moderation model without codes: unsafe is taken at its word (fail safe).
    return { outcome: 'unsafe', category: 'suicide' };
  }
  const crisis = codes.map((code) => CRISIS_CODES[code]).filter((category) => category !== undefined);
  const category = crisis.includes('suicide') ? 'suicide' : crisis[0];
  return category ? { outcome: 'unsafe', category } : { outcome: 'safe' };
}

/**
 * The optional second opinion. Its own deadline bounds it whatever the adapter
 * does, and any failure is reported, not thrown: the rules then decide alone.
 */
export function createModerationModel(options: ModerationModelOptions): ModerationModel {
  const { provider, timeoutMs } = options;
  return {
    async classify(texts) {
      const controller = new AbortController();
      // One user turn: Llama Guard classifies the last user message of a conversation.
      const call = provider
        .complete({
          messages: [{ role: 'user', content: texts.join('\n') }],
          maxTokens: 16,
          temperature: 0,
          timeoutMs,
          signal: controller.signal,
        })
        .then((completion) => parseModeration(completion.text))
        .catch((): ModerationOutcome => ({ outcome: controller.signal.aborted ? 'timeout' : 'error' }));
      try {
        return await withTimeout(call, timeoutMs);
      } catch {
        // `call` never rejects: this is the deadline.
        controller.abort();
        return { outcome: 'timeout' };
      }
    },
  };
}
