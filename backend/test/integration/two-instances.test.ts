import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { type ChatBody, type ErrorBody, postChat, request } from '../helpers/http-client.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

/**
 * Two instances on one Redis prefix, against the simulator through the real
 * groq-sdk: the cache and the per-caller limit are the cluster's, not an instance's.
 */
describe('two instances sharing one Redis', () => {
  const prefix = testPrefix('two-instances');
  let simulator: GroqSimulator;
  let a: TestBackend;
  let b: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 5, apiKey: 'test-key' });
    const env = {
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
      MAX_REQUESTS_PER_MINUTE: '5',
    };
    [a, b] = await Promise.all([
      startTestBackend({ ...env, INSTANCE_ID: 'instance-a' }),
      startTestBackend({ ...env, INSTANCE_ID: 'instance-b' }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await deleteTestPrefix(prefix);
    await simulator.close();
  });

  it('answers on B from the cache filled by A, calling Groq once', async () => {
    const question = { message: 'I keep opening my email instead of writing the report' };
    const first = await postChat(a.url, question, { ip: '198.51.100.1' });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-instance-id')).toBe('instance-a');
    const answer = first.json as ChatBody;
    expect(answer).toMatchObject({ cached: false, provider: 'groq', model: 'llama-3.1-8b-instant' });
    expect(answer.response).toMatch(/^\[sim\] /);
    expect(answer.usage.promptTokens).toBeGreaterThan(0);
    expect(answer.usage.completionTokens).toBeGreaterThan(0);

    // Same meaning, different spacing: still the same cache entry.
    const second = await postChat(
      b.url,
      { message: '  I keep opening my email   instead of writing the report ' },
      { ip: '198.51.100.1' },
    );
    expect(second.status).toBe(200);
    expect(second.headers.get('x-instance-id')).toBe('instance-b');
    expect(second.json).toMatchObject({ cached: true, response: answer.response, usage: answer.usage });
    expect(simulator.stats().byStatus).toEqual({ 200: 1 });

    // Hit and miss counts live in Redis, so any instance reports the cluster's: once the other's batch is
    // flushed (every 250 ms) and the instance's one-second snapshot of the cluster's figures is renewed.
    for (const backend of [a, b]) {
      await expect
        .poll(
          async () => ((await request(`${backend.url}/api/chat/stats`)).json as { cacheStats: unknown }).cacheStats,
          { timeout: 5000 },
        )
        .toMatchObject({ hits: 1, misses: 1 });
    }
  });

  it('holds 5 requests per minute per caller across both instances', async () => {
    const ip = '198.51.100.2';
    const landings = [a, b, a, b, a];
    for (const [index, backend] of landings.entries()) {
      const response = await postChat(backend.url, { message: `attempt ${index}` }, { ip });
      expect(response.status, `request ${index + 1}`).toBe(200);
      expect(response.headers.get('ratelimit-limit')).toBe('5');
      expect(response.headers.get('ratelimit-remaining')).toBe(String(4 - index));
    }
    // The 6th is refused wherever it lands, and keeps being refused.
    for (const backend of [b, a]) {
      const refused = await postChat(backend.url, { message: 'one more' }, { ip });
      expect(refused.status).toBe(429);
      expect((refused.json as ErrorBody).error.code).toBe('rate_limited');
      const retryAfter = Number(refused.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(refused.headers.get('ratelimit-limit')).toBe('5');
      expect(refused.headers.get('ratelimit-remaining')).toBe('0');
      expect(refused.headers.get('ratelimit-reset')).toBe(String(retryAfter));
      expect(refused.headers.get('x-instance-id')).toBe(backend === a ? 'instance-a' : 'instance-b');
    }
  });

  it('does not limit another caller', async () => {
    for (const backend of [a, b]) {
      const response = await postChat(backend.url, { message: 'attempt 0' }, { ip: '198.51.100.3' });
      expect(response.status).toBe(200);
      expect(response.headers.get('ratelimit-remaining')).toBe(backend === a ? '4' : '3');
    }
  });

  it('refuses before calling Groq', async () => {
    const before = simulator.stats().requests;
    const refused = await postChat(a.url, { message: 'a brand new question' }, { ip: '198.51.100.2' });
    expect(refused.status).toBe(429);
    expect(simulator.stats().requests).toBe(before);
  });
});

describe('a proxy that is not trusted', () => {
  const prefix = testPrefix('untrusted-proxy');
  let simulator: GroqSimulator;
  let backend: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 5 });
    // The test talks from loopback; trusting only 10/8 makes loopback an ordinary client.
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
      MAX_REQUESTS_PER_MINUTE: '2',
      TRUSTED_PROXIES: '10.0.0.0/8',
    });
  });

  afterAll(async () => {
    await backend.close();
    await deleteTestPrefix(prefix);
    await simulator.close();
  });

  it('cannot dodge the limit by forging X-Forwarded-For', async () => {
    const statuses: number[] = [];
    for (const ip of ['203.0.113.1', '203.0.113.2', '203.0.113.3']) {
      statuses.push((await postChat(backend.url, { message: 'hello' }, { ip })).status);
    }
    expect(statuses).toEqual([200, 200, 429]);
  });
});
