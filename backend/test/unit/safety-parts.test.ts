import { describe, expect, it } from 'vitest';
import { isSafetyAnswer, safetyAnswer } from '../../src/safety/answers.js';
import { parseLocale, preferredLocale } from '../../src/safety/language.js';
import { parseModeration } from '../../src/safety/moderation-model.js';
import { normalize } from '../../src/safety/normalize.js';
import { createRuleClassifier } from '../../src/safety/rule-classifier.js';
import { LANGUAGES } from '../../src/safety/rules/index.js';
import { createSafetyCheck } from '../../src/safety/safety-check.js';
import { createMetrics } from '../../src/telemetry/metrics.js';

const classifier = createRuleClassifier(LANGUAGES);
const fires = (...texts: string[]) => classifier.classify(texts) !== undefined;

describe('safety normalisation', () => {
  it('drops case, accents, apostrophes and repeated letters; keeps sentence ends', () => {
    expect(normalize('Ya NO aguanto MÁÁÁS… ¡quiero desaparecer!')).toBe('ya no aguanto mas | quiero desaparecer |');
    expect(normalize("I'm sooo done. Don't")).toBe('im so done | dont');
  });

  it('catches elongated, misspelt and slang forms', () => {
    expect(fires('i want to diiiieee')).toBe(true);
    expect(fires('I KEEP THINKING ABOUT SUICDE')).toBe(true);
    expect(fires('gonna kms tbh')).toBe(true);
    expect(fires('kiero suisidarme')).toBe(true);
    expect(fires('NO QUIERO DESPERTAR MAÑANA')).toBe(true);
  });

  it('blanks an idiom without hiding a crisis said beside it', () => {
    expect(fires('I want to die of embarrassment')).toBe(false);
    expect(fires('I want to die of embarrassment. Honestly I want to kill myself')).toBe(true);
    expect(fires('me muero de sueño')).toBe(false);
    expect(fires('me muero de sueño y quiero morirme')).toBe(true);
  });

  it('needs two different weak phrases, in the message or the recent turns', () => {
    expect(fires('ya no aguanto más este trabajo')).toBe(false);
    expect(fires('ya no aguanto más', 'quiero desaparecer')).toBe(true);
    expect(fires('I give up', 'I give up')).toBe(false);
  });
});

describe('safety locales', () => {
  it('parses tags and Accept-Language by q', () => {
    expect(parseLocale('es-MX')).toEqual({ language: 'es', country: 'MX' });
    expect(parseLocale('zh-Hant-TW')).toEqual({ language: 'zh', country: 'TW' });
    expect(parseLocale('en_gb')).toEqual({ language: 'en', country: 'GB' });
    expect(parseLocale('*')).toBeUndefined();
    expect(preferredLocale('fr;q=0.5, es-AR;q=0.9, en;q=0.8')).toEqual({ language: 'es', country: 'AR' });
    expect(preferredLocale('garbage;q=x')).toBeUndefined();
  });
});

describe('safety answers', () => {
  it('recognises its own text echoed back in a history', () => {
    const answer = safetyAnswer({ category: 'self_harm', source: 'rules', language: 'en', country: 'US' });
    expect(isSafetyAnswer(answer.response)).toBe(true);
    expect(isSafetyAnswer('Pick the smallest piece: open the file.')).toBe(false);
    expect(answer.safety.resources[0]).toMatchObject({ phone: '988', text: 'Text 988' });
  });

  it('gives findahelpline and an emergency number where it knows one', () => {
    const colombia = safetyAnswer({ category: 'suicide', source: 'rules', language: 'es', country: 'CO' });
    expect(colombia.safety.resources).toEqual([
      expect.objectContaining({ url: 'https://findahelpline.com/countries/co' }),
      expect.objectContaining({ phone: '123' }),
    ]);
    const germany = safetyAnswer({ category: 'danger', source: 'model', language: 'de', country: 'DE' });
    expect(germany.response).toMatch(/^Thank you/);
    expect(germany.safety.resources[0]?.phone).toBe('112');
  });

  it('reads Llama Guard verdicts', () => {
    expect(parseModeration('safe')).toEqual({ outcome: 'safe' });
    expect(parseModeration('unsafe\nS11')).toEqual({ outcome: 'unsafe', category: 'suicide' });
    expect(parseModeration('unsafe\nS1,S11')).toEqual({ outcome: 'unsafe', category: 'suicide' });
    expect(parseModeration('unsafe\nS1')).toEqual({ outcome: 'unsafe', category: 'danger' });
    expect(parseModeration('unsafe\nS10')).toEqual({ outcome: 'safe' });
    expect(parseModeration('unsafe')).toEqual({ outcome: 'unsafe', category: 'suicide' });
    expect(parseModeration('I cannot help with that')).toEqual({ outcome: 'error' });
  });
});

describe('safety check latency', () => {
  it('costs microseconds per request (rules only)', async () => {
    const check = createSafetyCheck({ languages: LANGUAGES, historyTurns: 3, metrics: createMetrics() });
    const history = [
      { role: 'user' as const, content: 'I have a presentation on Friday and I have not started' },
      { role: 'assistant' as const, content: 'Pick the smallest piece: open the file and write one line.' },
      { role: 'user' as const, content: 'ok but I keep opening my email instead' },
    ];
    const messages = [
      'How do I start my essay when I do not know what to write?',
      '¿cómo me organizo la semana si tengo tres entregas y un examen?',
    ];
    for (let index = 0; index < 200; index += 1) {
      await check.check({ message: messages[index % 2] as string, history });
    }
    const rounds = 2000;
    const started = process.hrtime.bigint();
    for (let index = 0; index < rounds; index += 1) {
      await check.check({ message: messages[index % 2] as string, history });
    }
    const micros = Number(process.hrtime.bigint() - started) / 1000 / rounds;
    process.stdout.write(`safety check (rules, message + 2 history turns): ${micros.toFixed(1)} µs per request\n`);
    expect(micros).toBeLessThan(5000);
  });
});
