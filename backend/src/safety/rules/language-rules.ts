import type { SafetyCategory, SafetySignal } from '../types.js';

/**
 * One language's rules, as data. Patterns are regular expression sources
 * matched against normalize()d text: lower case, no accents or apostrophes,
 * repeated letters squeezed (write words normally: they are squeezed too),
 * whole words only (each pattern is anchored at word edges), and `{gap}`
 * standing for up to three words in between (`{gap5}`: up to five).
 */
export interface LanguageRules {
  /** ISO 639-1 code; the metric label and the key of the answer texts. */
  language: string;
  /** Frequent words that tell this language apart, for detection. */
  stopWords: readonly string[];
  /** Characters only this language writes (each one seen counts as a stop word). */
  letters: string;
  /** Whole words or phrases rewritten before matching: contractions, slang, common misspellings. */
  substitutions: Readonly<Record<string, string>>;
  /** Idioms and ordinary frustration: matched spans are blanked out before the triggers run. */
  exclusions: readonly string[];
  /** Any one match triggers. */
  triggers: readonly TriggerGroup[];
  /** Distress phrases that trigger only when two different ones appear in the recent user turns. */
  weak: readonly string[];
}

export interface TriggerGroup {
  category: SafetyCategory;
  signal: SafetySignal;
  patterns: readonly string[];
}
