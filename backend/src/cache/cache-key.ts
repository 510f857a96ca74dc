import { createHash } from 'node:crypto';
import type { ChatMessage, GenerationParams } from '../llm/types.js';

export interface CacheKeyInput {
  provider: string;
  model: string;
  promptVersion: string;
  messages: readonly ChatMessage[];
  maxTokens: number;
  temperature: number;
  /** Further sampling settings; absent ones leave the key as it was without them. */
  params?: GenerationParams;
}

/** Same meaning, same key: Unicode-normalised, trimmed, inner whitespace collapsed. */
export function normaliseText(text: string): string {
  return text.normalize('NFC').trim().replace(/\s+/g, ' ');
}

/** A hash of everything that decides the answer; no message text ends up in Redis keys. */
export function cacheKey(input: CacheKeyInput): string {
  const canonical = JSON.stringify([
    input.provider,
    input.model,
    input.promptVersion,
    input.maxTokens,
    input.temperature,
    input.messages.map((message) => [message.role, normaliseText(message.content)]),
    ...(input.params && Object.values(input.params).some((value) => value !== undefined)
      ? [
          [
            input.params.topP ?? null,
            input.params.stop ?? null,
            input.params.seed ?? null,
            input.params.responseFormat ?? null,
          ],
        ]
      : []),
  ]);
  return createHash('sha256').update(canonical).digest('base64url');
}
