import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createRuleClassifier } from '../../src/safety/rule-classifier.js';
import { LANGUAGES } from '../../src/safety/rules/index.js';

interface Labelled {
  text: string;
  language: 'en' | 'es';
  label: 'explicit' | 'implicit' | 'idiom' | 'frustration' | 'coaching';
  category?: string;
}

const messages = JSON.parse(
  readFileSync(new URL('../fixtures/safety-messages.json', import.meta.url), 'utf8'),
) as Labelled[];
const classifier = createRuleClassifier(LANGUAGES);
const fires = (text: string) => classifier.classify([text]) !== undefined;

function share(items: Labelled[], want: boolean) {
  const hits = items.filter((item) => fires(item.text) === want);
  return {
    rate: items.length === 0 ? 1 : hits.length / items.length,
    misses: items.filter((item) => !hits.includes(item)),
  };
}

const pct = (rate: number) => `${(rate * 100).toFixed(1)}%`;

/** The labelled set (written for this project) against the floor: 100% / 85% / at most 2%. */
describe('safety rules on the labelled set', () => {
  it('holds at least 150 messages in English and Spanish', () => {
    expect(messages.length).toBeGreaterThanOrEqual(150);
    expect(new Set(messages.map((message) => message.language))).toEqual(new Set(['en', 'es']));
  });

  for (const language of ['en', 'es'] as const) {
    it(`${language}: recall 100% explicit, ≥85% implicit; false positives ≤2%`, () => {
      const of = (...labels: Labelled['label'][]) =>
        messages.filter((message) => message.language === language && labels.includes(message.label));
      const explicit = share(of('explicit'), true);
      const implicit = share(of('implicit'), true);
      const rest = of('idiom', 'frustration', 'coaching');
      const falsePositives = 1 - share(rest, false).rate;
      // The figures SAFETY.md and the closing note quote.
      process.stdout.write(
        `safety ${language}: explicit recall ${pct(explicit.rate)} (${of('explicit').length}), ` +
          `implicit recall ${pct(implicit.rate)} (${of('implicit').length}), ` +
          `false positives ${pct(falsePositives)} (${rest.length})\n`,
      );
      expect(explicit.misses.map((item) => item.text)).toEqual([]);
      expect(implicit.rate).toBeGreaterThanOrEqual(0.85);
      expect(falsePositives).toBeLessThanOrEqual(0.02);
    });
  }

  it('names the category the set expects for explicit messages', () => {
    const wrong = messages
      .filter((message) => message.label === 'explicit')
      .filter((message) => classifier.classify([message.text])?.category !== message.category)
      .map((message) => message.text);
    expect(wrong).toEqual([]);
  });
});
