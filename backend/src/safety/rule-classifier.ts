import { normalize, squeezePattern, stripAccents } from './normalize.js';
import type { LanguageRules } from './rules/language-rules.js';
import type { SafetyCategory, SafetySignal } from './types.js';

export interface RuleMatch {
  category: SafetyCategory;
  signal: SafetySignal;
}

export interface RuleClassifier {
  /** The first rule any text matches; weak phrases count across all the texts together. */
  classify(texts: readonly string[]): RuleMatch | undefined;
}

/** Rules' sources as one whole-word, accent-free, squeezed regular expression (one pass instead of one per rule). */
function compile(sources: readonly string[], flags = 'u'): RegExp {
  const expanded = sources.map((source) =>
    squeezePattern(
      stripAccents(source.replace(/\{gap(\d*)\}/g, (_match, count: string) => `(?:[\\p{L}\\p{N}]+ ){0,${count || 3}}`)),
    ),
  );
  return new RegExp(`(?<=^| )(?:${expanded.join('|')})(?= |$)`, flags);
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface CompiledLanguage {
  /** Normalised, with this language's substitutions. */
  prepare(text: string): string;
  exclusions: readonly string[];
  triggers: { category: SafetyCategory; signal: SafetySignal; pattern: RegExp }[];
  weak: RegExp[];
}

function compileLanguage(rules: LanguageRules): CompiledLanguage {
  const substitutions = new Map(
    Object.entries(rules.substitutions).map(([from, to]) => [normalize(from), normalize(to)] as const),
  );
  const substitution = new RegExp(
    `(?<=^| )(?:${[...substitutions.keys()]
      .sort((a, b) => b.length - a.length)
      .map(escapeRegExp)
      .join('|')})(?= |$)`,
    'gu',
  );
  return {
    prepare: (text) => normalize(text).replace(substitution, (word) => substitutions.get(word) ?? word),
    exclusions: rules.exclusions,
    triggers: rules.triggers.map((group) => ({
      category: group.category,
      signal: group.signal,
      pattern: compile(group.patterns),
    })),
    weak: rules.weak.map((source) => compile([source])),
  };
}

/**
 * The floor of the safety check: every language's rules run on every text
 * (people mix languages, and detection can be wrong), so the detected
 * language only picks the answer's words, never what is caught.
 */
export function createRuleClassifier(languages: readonly LanguageRules[]): RuleClassifier {
  const compiled = languages.map(compileLanguage);
  // An idiom is blanked out for every language's triggers: "suicide prevention" is no Spanish "suicid…" either.
  const exclusions = compile(
    compiled.flatMap((language) => language.exclusions),
    'gu',
  );
  const blankIdioms = (text: string) => text.replace(exclusions, '|');
  return {
    classify(texts) {
      for (const language of compiled) {
        const prepared = texts.map((text) => blankIdioms(language.prepare(text)));
        for (const group of language.triggers) {
          if (prepared.some((text) => group.pattern.test(text))) {
            return { category: group.category, signal: group.signal };
          }
        }
        const weakSeen = language.weak.filter((pattern) => prepared.some((text) => pattern.test(text))).length;
        if (weakSeen >= 2) {
          return { category: 'suicide', signal: 'implicit' };
        }
      }
      return undefined;
    },
  };
}
