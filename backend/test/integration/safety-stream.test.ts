import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { readEvents } from '../helpers/sse.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

const CRISIS = 'no quiero despertar mañana';
const COACH = 'llama-3.1-8b-instant';

/** The stream and the OpenAI-compatible gateway give the same fixed answer, and never ask the LLM. */
describe('safety answers on /api/chat/stream and /v1/chat/completions', () => {
  const prefix = testPrefix('safety-stream');
  let simulator: GroqSimulator;
  let backend: TestBackend;
  let off: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 5, apiKey: 'test-key' });
    const env = { GROQ_BASE_URL: simulator.url, GROQ_API_KEY: 'test-key', GROQ_RPM: '0', GROQ_TPM: '0' };
    backend = await startTestBackend({ ...env, REDIS_PREFIX: prefix });
    off = await startTestBackend({ ...env, REDIS_PREFIX: `${prefix}off:`, SAFETY_ON_GATEWAY: 'false' });
  });

  afterAll(async () => {
    await Promise.all([backend.close(), off.close()]);
    await deleteTestPrefix(prefix);
    await simulator.close();
  });

  const coachCalls = () => simulator.stats().calls.filter((call) => call.model === COACH).length;
  const post = (url: string, path: string, body: unknown) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.40' },
      body: JSON.stringify(body),
    });

  it('streams one delta with the fixed text, then done carrying safety', async () => {
    const response = await post(backend.url, '/api/chat/stream', { message: CRISIS, locale: 'es-ES' });
    expect(response.status).toBe(200);
    const events = await readEvents(response);
    expect(events.map((event) => event.event)).toEqual(['delta', 'done']);
    const [delta, done] = events.map((event) => event.json) as [{ text: string }, { response: string }];
    expect(delta.text).toBe(done.response);
    expect(done).toMatchObject({ provider: 'safety', cached: false, safety: { triggered: true, category: 'suicide' } });
    expect(done.response).toContain('024');
    expect(coachCalls()).toBe(0);
  });

  it('answers the gateway with the fixed text, unless SAFETY_ON_GATEWAY=false', async () => {
    const body = { model: COACH, messages: [{ role: 'user', content: CRISIS }] };
    const checked = (await (await post(backend.url, '/v1/chat/completions', body)).json()) as {
      choices: { message: { content: string } }[];
      x_focus: { provider: string };
    };
    expect(checked.x_focus.provider).toBe('safety');
    expect(checked.choices[0]?.message.content).toMatch(/^Gracias por contármelo/);
    expect(coachCalls()).toBe(0);

    const unchecked = (await (await post(off.url, '/v1/chat/completions', body)).json()) as {
      x_focus: { provider: string };
    };
    expect(unchecked.x_focus.provider).toBe('groq');
    // The app's routes check whatever SAFETY_ON_GATEWAY says.
    const app = (await (await post(off.url, '/api/chat', { message: CRISIS })).json()) as { provider: string };
    expect(app.provider).toBe('safety');
  });

  it('logs none of it', () => {
    expect(backend.logs.text).not.toContain(CRISIS);
    expect(off.logs.text).not.toContain(CRISIS);
  });
});
