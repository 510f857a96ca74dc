import type { Metrics } from '../telemetry/metrics.js';
import { ANSWER_LANGUAGES, isSafetyAnswer } from './answers.js';
import { createLanguageDetector, type Locale, parseLocale, preferredLocale } from './language.js';
import type { ModerationModel } from './moderation-model.js';
import { createRuleClassifier } from './rule-classifier.js';
import type { LanguageRules } from './rules/language-rules.js';
import type { SafetyCategory, SafetyInput, SafetyTurn, SafetyVerdict } from './types.js';

const DEFAULT_LANGUAGE = 'en';

export interface SafetyCheck {
  /** A verdict when the message (or the recent user turns) must get the safety answer; undefined otherwise. */
  check(input: SafetyInput): Promise<SafetyVerdict | undefined>;
}

export interface SafetyCheckOptions {
  languages: readonly LanguageRules[];
  /** How many of the latest user turns of the history are read with the message. */
  historyTurns: number;
  /** SAFETY_MODEL, when configured: asked only when the rules found nothing. */
  model?: ModerationModel;
  metrics: Metrics;
}

/**
 * The user turns to read: the latest few, but none from before our last safety
 * answer in the history: those were answered already, and repeating the crisis
 * answer to every later question would stop the person getting focus help.
 */
export function recentUserTurns(history: readonly SafetyTurn[], count: number): string[] {
  let answered = history.length - 1;
  while (
    answered >= 0 &&
    !(history[answered]?.role === 'assistant' && isSafetyAnswer(history[answered]?.content ?? ''))
  ) {
    answered -= 1;
  }
  return history
    .slice(answered + 1)
    .filter((turn) => turn.role === 'user')
    .slice(-count)
    .map((turn) => turn.content);
}

/**
 * Rules always, the model when configured and the rules said nothing:
 * triggered when either says unsafe. The model failing or timing out leaves
 * the rules' verdict (fail safe: never fewer answers than the rules give).
 */
export function createSafetyCheck(options: SafetyCheckOptions): SafetyCheck {
  const { languages, historyTurns, model, metrics } = options;
  const rules = createRuleClassifier(languages);
  const detect = createLanguageDetector(languages);

  function where(input: SafetyInput): { language: string; country: string | undefined } {
    const own = input.locale ? parseLocale(input.locale) : undefined;
    const header: Locale | undefined = input.acceptLanguage ? preferredLocale(input.acceptLanguage) : undefined;
    const supported = (locale: Locale | undefined) =>
      locale && ANSWER_LANGUAGES.includes(locale.language) ? locale.language : undefined;
    // The app's own locale names the language its user reads; the message's words come before a device's header.
    const language = supported(own) ?? detect(input.message) ?? supported(header) ?? DEFAULT_LANGUAGE;
    return { language, country: own?.country ?? header?.country };
  }

  return {
    async check(input) {
      const texts = [...recentUserTurns(input.history ?? [], historyTurns), input.message];
      let category: SafetyCategory | undefined = rules.classify(texts)?.category;
      let source: SafetyVerdict['source'] = 'rules';
      if (category === undefined && model) {
        const verdict = await model.classify(texts);
        metrics.safetyModelChecks.inc({ outcome: verdict.outcome });
        if (verdict.outcome === 'unsafe') {
          category = verdict.category;
          source = 'model';
        }
      }
      if (category === undefined) {
        return undefined;
      }
      const { language, country } = where(input);
      metrics.safetyTriggered.inc({ category, language });
      return { category, source, language, country };
    },
  };
}
