import { english } from './en.js';
import { spanish } from './es.js';
import type { LanguageRules } from './language-rules.js';

/** Every language with rules and answer texts; the first is the default. Add a language here. */
export const LANGUAGES: readonly LanguageRules[] = [english, spanish];
