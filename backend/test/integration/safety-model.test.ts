import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { postChat, request } from '../helpers/http-client.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

const GUARD = 'llama-guard-sim';
const COACH = 'llama-3.1-8b-instant';
const TIMEOUT_MS = 300;
const NEUTRAL = 'Help me plan the first hour of my study session';
const EXPLICIT = 'I want to kill myself';

/**
 * SAFETY_MODEL against the simulator: triggered when the rules or the model
 * say unsafe; the model failing or hanging leaves the rules to decide.
 */
describe('SAFETY_MODEL beside the rules', () => {
  const prefix = testPrefix('safety-model');
  let simulator: GroqSimulator;
  let backend: TestBackend;
  let ip = 10;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 5, apiKey: 'test-key' });
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
      GROQ_RPM: '0',
      GROQ_TPM: '0',
      SAFETY_MODEL: GUARD,
      SAFETY_MODEL_TIMEOUT_MS: String(TIMEOUT_MS),
      LOG_LEVEL: 'trace',
    });
  });

  beforeEach(() => simulator.reset());

  afterAll(async () => {
    await backend.close();
    await deleteTestPrefix(prefix);
    await simulator.close();
  });

  const calls = (model: string) => simulator.stats().calls.filter((call) => call.model === model).length;
  // A fresh caller and a fresh message each time, so neither the rate limit nor the cache plays a part.
  async function ask(message: string) {
    ip += 1;
    const response = await postChat(backend.url, { message: `${message} (${ip})` }, { ip: `198.51.100.${ip}` });
    expect(response.status).toBe(200);
    return response.json as { provider: string; safety?: { category: string } };
  }

  it('"unsafe" from the model triggers on a message the rules let through', async () => {
    simulator.configure({ replies: { [GUARD]: 'unsafe\nS11' } });
    const body = await ask(NEUTRAL);
    expect(body).toMatchObject({ provider: 'safety', safety: { category: 'suicide' } });
    expect(calls(GUARD)).toBe(1);
    expect(calls(COACH)).toBe(0);
  });

  it('a hazard that is no crisis (S10) leaves the coach to answer', async () => {
    simulator.configure({ replies: { [GUARD]: 'unsafe\nS10' } });
    expect((await ask(NEUTRAL)).provider).toBe('groq');
  });

  it('"safe" from the model does not overrule the rules', async () => {
    simulator.configure({ replies: { [GUARD]: 'safe' } });
    expect((await ask(NEUTRAL)).provider).toBe('groq');
    expect(calls(COACH)).toBe(1);
    const explicit = await ask(EXPLICIT);
    expect(explicit).toMatchObject({ provider: 'safety', safety: { category: 'suicide' } });
    // The rules fired first: the model was not asked about that one.
    expect(calls(GUARD)).toBe(1);
  });

  it('a model that hangs is dropped after SAFETY_MODEL_TIMEOUT_MS and the rules decide alone', async () => {
    simulator.configure({ hangModels: [GUARD] });
    const started = Date.now();
    expect((await ask(NEUTRAL)).provider).toBe('groq');
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 2000);
    expect((await ask(EXPLICIT)).provider).toBe('safety');
    const metrics = (await request(`${backend.url}/metrics`)).text;
    expect(metrics).toMatch(/focus_safety_model_checks_total\{outcome="timeout"\} [1-9]/);
    expect(metrics).toMatch(/focus_safety_model_checks_total\{outcome="unsafe"\} 1/);
  });

  it('a model answering errors leaves the rules alone', async () => {
    simulator.configure({ mode: 'error', errorStatus: 500 });
    // The coach fails too (same simulator), so only the crisis message is checked here.
    expect((await ask(EXPLICIT)).provider).toBe('safety');
    const neutral = await postChat(backend.url, { message: NEUTRAL }, { ip: '198.51.100.250' });
    expect(neutral.status).not.toBe(200);
    expect((await request(`${backend.url}/metrics`)).text).toMatch(
      /focus_safety_model_checks_total\{outcome="error"\} [1-9]/,
    );
  });

  it('logs none of the messages', () => {
    for (const message of [NEUTRAL, EXPLICIT]) {
      expect(backend.logs.text).not.toContain(message);
    }
  });
});
