/**
 * The one form every rule is written for and every message is matched in:
 * lower case, no accents, no apostrophes, sentence ends as " | " (so a rule
 * never spans two sentences), other punctuation as spaces, and every run of a
 * repeated letter squeezed to one ("noooo" and "no", "kill" and "kil" alike).
 * Rules go through the same squeeze when they are compiled (rule-classifier.ts).
 */
export function normalize(text: string): string {
  return text
    .toLowerCase()
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .replace(/['’‘`´]/g, '')
    .replace(/[.!?;:…\n\r]+/g, ' | ')
    .replace(/[^\p{L}\p{N}|]+/gu, ' ')
    .replace(/(\p{L})\1+/gu, '$1')
    .replace(/ +/g, ' ')
    .trim();
}

/**
 * Squeezes repeated letters in a rule's regular expression source as normalize()
 * does in text, leaving escapes alone (`\bbetter` stays `\b` + "beter").
 */
export function squeezePattern(source: string): string {
  return source.replace(/(?<!\\)(\p{L})\1+/gu, '$1');
}

/** Accents off, as normalize() takes them off the text. */
export function stripAccents(text: string): string {
  return text.normalize('NFD').replace(/\p{M}+/gu, '');
}
