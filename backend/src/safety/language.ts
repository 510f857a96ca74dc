import { normalize } from './normalize.js';
import type { LanguageRules } from './rules/language-rules.js';

export interface Locale {
  language: string;
  /** ISO 3166 alpha-2, upper case, when the tag names a region. */
  country: string | undefined;
}

/** "es-MX" → {es, MX}; "en" → {en, undefined}; a script subtag ("zh-Hant-TW") is skipped. */
export function parseLocale(tag: string): Locale | undefined {
  const [language, ...rest] = tag.trim().replace(/_/g, '-').split('-');
  if (!language || !/^[A-Za-z]{2,3}$/.test(language)) {
    return undefined;
  }
  const region = rest.find((part) => /^[A-Za-z]{2}$/.test(part));
  return { language: language.toLowerCase(), country: region?.toUpperCase() };
}

/** The Accept-Language entry with the highest q (the first among equals). */
export function preferredLocale(header: string): Locale | undefined {
  let best: { locale: Locale; q: number } | undefined;
  for (const entry of header.split(',').slice(0, 20)) {
    const [tag = '', ...params] = entry.split(';');
    const qParam = params.map((param) => param.trim()).find((param) => param.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    const locale = parseLocale(tag);
    if (locale && Number.isFinite(q) && q > 0 && (!best || q > best.q)) {
      best = { locale, q };
    }
  }
  return best?.locale;
}

/** Creates a detector that counts each language's stop words: the most wins, ties go to the first, none is undefined. */
export function createLanguageDetector(languages: readonly LanguageRules[]) {
  const sets = languages.map((rules) => ({
    language: rules.language,
    words: new Set(rules.stopWords.map(normalize)),
    letters: [...rules.letters],
  }));
  return function detectLanguage(text: string): string | undefined {
    const words = normalize(text).split(' ');
    const lower = text.toLowerCase();
    let best: (typeof sets)[number] | undefined;
    let bestScore = 0;
    for (const set of sets) {
      const score =
        words.filter((word) => set.words.has(word)).length +
        set.letters.filter((letter) => lower.includes(letter)).length;
      if (score > bestScore) {
        best = set;
        bestScore = score;
      }
    }
    return best?.language;
  };
}
