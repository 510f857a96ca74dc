import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { postChat, request } from '../helpers/http-client.js';
import { deleteTestPrefix, startTestBackend, type TestBackend } from '../helpers/test-backend.js';

describe('graceful shutdown', () => {
  let simulator: GroqSimulator;
  let backend: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 800 });
    backend = await startTestBackend({
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
      SHUTDOWN_DRAIN_MS: '300',
    });
  });

  afterAll(async () => {
    await simulator.close();
    await deleteTestPrefix(backend.prefix);
  });

  it('reports not-ready while draining, finishes in-flight requests, then stops', async () => {
    // A keep-alive connection that the client will keep open after its answer.
    expect((await request(`${backend.url}/healthz`)).status).toBe(200);
    const inFlight = postChat(backend.url, { message: 'Finish me please' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    const stopped = backend.close();

    const readyz = await request(`${backend.url}/readyz`);
    expect(readyz.status).toBe(503);
    expect(readyz.json).toMatchObject({ status: 'draining', checks: { draining: true } });

    expect((await inFlight).status).toBe(200);
    await stopped;
    expect(Date.now() - started).toBeLessThan(3000);
    await expect(request(`${backend.url}/healthz`)).rejects.toThrow();
    expect(backend.logs.text).toMatch(/"msg":"stopped"/);
  });
});
