import { describe, expect, it } from 'vitest';
import { type CacheKeyInput, cacheKey, normaliseText } from '../../src/cache/cache-key.js';
import { buildMessages } from '../../src/chat/chat-service.js';
import { SYSTEM_PROMPT_VERSION } from '../../src/chat/system-prompt.js';

const base: CacheKeyInput = {
  provider: 'groq',
  model: 'llama-3.1-8b-instant',
  promptVersion: SYSTEM_PROMPT_VERSION,
  messages: buildMessages({
    message: 'I cannot start my essay',
    history: [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello! What is on your plate?' },
    ],
  }),
  maxTokens: 300,
  temperature: 0.6,
};

const withLastMessage = (content: string): CacheKeyInput => ({
  ...base,
  messages: [...base.messages.slice(0, -1), { role: 'user', content }],
});

describe('cacheKey', () => {
  it('is stable: the same inputs give the same key', () => {
    expect(cacheKey({ ...base, messages: base.messages.map((message) => ({ ...message })) })).toBe(cacheKey(base));
  });

  it('is an opaque hash, holding no message text', () => {
    expect(cacheKey(base)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it.each([
    ['leading and trailing whitespace', '  I cannot start my essay \n'],
    ['inner runs of whitespace', 'I  cannot\tstart\n\nmy essay'],
  ])('ignores %s', (_what, variant) => {
    expect(cacheKey(withLastMessage(variant))).toBe(cacheKey(base));
  });

  it('treats composed and decomposed Unicode alike (NFC)', () => {
    const composed = 'No puedo empezar la redacci\u00f3n';
    const decomposed = 'No puedo empezar la redaccio\u0301n';
    expect(composed).not.toBe(decomposed);
    expect(cacheKey(withLastMessage(decomposed))).toBe(cacheKey(withLastMessage(composed)));
    expect(normaliseText(decomposed)).toBe(composed);
  });

  it.each<[string, CacheKeyInput]>([
    ['the message', withLastMessage('I cannot start my thesis')],
    ['the letter case of the message', withLastMessage('i cannot start my essay')],
    ['the model', { ...base, model: 'llama-3.3-70b-versatile' }],
    ['the provider', { ...base, provider: 'fallback' }],
    ['the prompt version', { ...base, promptVersion: `${SYSTEM_PROMPT_VERSION}-next` }],
    ['max tokens', { ...base, maxTokens: 301 }],
    ['the temperature', { ...base, temperature: 0.7 }],
    ['a history turn', { ...base, messages: base.messages.map((m, i) => (i === 1 ? { ...m, content: 'Hey' } : m)) }],
    ['a history role', { ...base, messages: base.messages.map((m, i) => (i === 1 ? { ...m, role: 'assistant' } : m)) }],
    [
      'the history length',
      { ...base, messages: [base.messages[0], ...base.messages.slice(3)] as CacheKeyInput['messages'] },
    ],
    [
      'the order of turns',
      {
        ...base,
        messages: [base.messages[0], base.messages[2], base.messages[1], base.messages[3]] as CacheKeyInput['messages'],
      },
    ],
    [
      'where the text is split between turns',
      {
        ...base,
        messages: [
          ...base.messages.slice(0, 3),
          { role: 'user', content: 'I cannot start' },
          { role: 'user', content: 'my essay' },
        ],
      },
    ],
  ])('changes when %s changes', (_what, variant) => {
    expect(cacheKey(variant)).not.toBe(cacheKey(base));
  });

  it('separates history from the new message', () => {
    const asHistory = buildMessages({ message: 'b', history: [{ role: 'user', content: 'a' }] });
    const asOneMessage = buildMessages({ message: 'a b', history: [] });
    expect(cacheKey({ ...base, messages: asHistory })).not.toBe(cacheKey({ ...base, messages: asOneMessage }));
  });
});
