import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { type ChatBody, type ErrorBody, postChat } from '../helpers/http-client.js';
import { deletePrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';
import { metricValue } from '../helpers/upstream-cluster.js';

describe('retries of upstream calls (no fallback)', () => {
  const prefix = testPrefix('upstream-retries');
  let simulator: GroqSimulator;
  let backend: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 5, apiKey: 'test-key' });
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
      UPSTREAM_MAX_ATTEMPTS: '3',
      UPSTREAM_RETRY_BASE_MS: '50',
      MAX_REQUESTS_PER_MINUTE: '100000',
    });
  });

  afterEach(() => simulator.reset());

  afterAll(async () => {
    await deletePrefix(backend.runtime, prefix);
    await backend.close();
    await simulator.close();
  });

  it('retries 5xx answers and answers 200 when the upstream recovers', async () => {
    simulator.configure({ failNext: 2, errorStatus: 503 });
    const response = await postChat(backend.url, { message: 'Retry me, please' });
    expect(response.status).toBe(200);
    expect((response.json as ChatBody).provider).toBe('groq');
    expect(simulator.stats().byStatus).toEqual({ 503: 2, 200: 1 });
    expect(await metricValue(backend.url, 'focus_upstream_retries_total', { provider: 'groq' })).toBe(2);
    expect(await metricValue(backend.url, 'focus_upstream_calls_total', { outcome: 'unavailable' })).toBe(2);
  });

  it('stops after UPSTREAM_MAX_ATTEMPTS calls', async () => {
    simulator.configure({ failNext: 10, errorStatus: 500 });
    const response = await postChat(backend.url, { message: 'Still broken?' });
    expect(response.status).toBe(502);
    expect((response.json as ErrorBody).error.code).toBe('upstream_error');
    expect(simulator.stats().byStatus).toEqual({ 500: 3 });
  });

  it('does not retry a request the upstream rejected', async () => {
    simulator.configure({ failNext: 1, errorStatus: 400 });
    const response = await postChat(backend.url, { message: 'A request Groq refuses' });
    expect(response.status).toBe(502);
    expect((response.json as ErrorBody).error.code).toBe('upstream_rejected');
    expect(simulator.stats().byStatus).toEqual({ 400: 1 });
  });

  // Last: the 429 pauses calls to this simulator for every later test.
  it('waits out the pause a 429 sets (2 s without retry-after) within the quota wait, then answers', async () => {
    simulator.configure({ failNext: 1, errorStatus: 429 });
    const response = await postChat(backend.url, { message: 'Rate limited once' });
    expect(response.status).toBe(200);
    expect(simulator.stats().byStatus).toEqual({ 429: 1, 200: 1 });
    expect(response.elapsedMs).toBeGreaterThanOrEqual(1900);
    expect(await metricValue(backend.url, 'focus_quota_waits_total', { provider: 'groq' })).toBe(1);
  });
});
