import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { freePort } from '../helpers/backend-process.js';
import { type ChatBody, type ErrorBody, postChat, request } from '../helpers/http-client.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

const GROQ_TIMEOUT_MS = 600;
const INSTANCE_ID = 'upstream-failures';

describe('Groq failing', () => {
  const prefix = testPrefix('upstream-failures');
  let simulator: GroqSimulator;
  let backend: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 5, apiKey: 'test-key' });
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
      GROQ_TIMEOUT_MS: String(GROQ_TIMEOUT_MS),
      // One call per request: these cases pin how each Groq error is rendered (retries: upstream-retries.test.ts).
      UPSTREAM_MAX_ATTEMPTS: '1',
      MAX_REQUESTS_PER_MINUTE: '100000',
      INSTANCE_ID,
    });
  });

  afterEach(() => simulator.reset());

  afterAll(async () => {
    await backend.close();
    await deleteTestPrefix(prefix);
    await simulator.close();
  });

  it('answers 504 upstream_timeout when Groq hangs, within GROQ_TIMEOUT_MS and a margin', async () => {
    simulator.configure({ mode: 'hang' });
    const response = await postChat(backend.url, { message: 'Are you there?' });
    expect(response.status).toBe(504);
    expect((response.json as ErrorBody).error.code).toBe('upstream_timeout');
    expect(response.elapsedMs).toBeGreaterThanOrEqual(GROQ_TIMEOUT_MS - 50);
    expect(response.elapsedMs).toBeLessThan(GROQ_TIMEOUT_MS + 1500);
    expect(response.headers.get('x-instance-id')).toBe(INSTANCE_ID);
  });

  it.each([
    [500, 502, 'upstream_error'],
    [503, 502, 'upstream_error'],
    [429, 503, 'upstream_rate_limited'],
    [400, 502, 'upstream_rejected'],
  ])('renders a Groq %i as %i %s, and does not cache it', async (groqStatus, status, code) => {
    const message = `What now after a ${groqStatus}?`;
    simulator.configure({ failNext: 1, errorStatus: groqStatus });
    const failed = await postChat(backend.url, { message });
    expect(failed.status).toBe(status);
    expect((failed.json as ErrorBody).error.code).toBe(code);
    expect(failed.text).not.toContain('simulated');

    const next = await postChat(backend.url, { message });
    expect(next.status).toBe(200);
    expect((next.json as ChatBody).cached).toBe(false);
    expect(simulator.stats().byStatus).toEqual({ [groqStatus]: 1, 200: 1 });
  });

  it('answers 502 upstream_misconfigured when Groq refuses our key', async () => {
    simulator.configure({ apiKey: 'another-key' });
    const response = await postChat(backend.url, { message: 'Is my key right?' });
    expect(response.status).toBe(502);
    expect((response.json as ErrorBody).error.code).toBe('upstream_misconfigured');
  });

  // Last: the governor honours Groq's retry-after, so calls to Groq pause for the rest of the minute.
  it('tells the client when to retry after Groq rate-limits us', async () => {
    simulator.configure({ rpm: 1 });
    expect((await postChat(backend.url, { message: 'first of the minute' })).status).toBe(200);
    const limited = await postChat(backend.url, { message: 'second of the minute' });
    expect(limited.status).toBe(503);
    expect((limited.json as ErrorBody).error.code).toBe('upstream_rate_limited');
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });
});

describe('Groq unreachable', () => {
  let backend: TestBackend;

  beforeAll(async () => {
    backend = await startTestBackend({
      GROQ_BASE_URL: `http://127.0.0.1:${await freePort()}`,
      GROQ_API_KEY: 'test-key',
    });
  });

  afterAll(async () => {
    await backend.close();
    await deleteTestPrefix(backend.prefix);
  });

  it('answers 503 upstream_unavailable with Retry-After', async () => {
    const response = await postChat(backend.url, { message: 'Hello?' });
    expect(response.status).toBe(503);
    expect((response.json as ErrorBody).error.code).toBe('upstream_unavailable');
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});

describe('request and instance ids', () => {
  let simulator: GroqSimulator;
  let backend: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 1 });
    backend = await startTestBackend({
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
      MAX_REQUESTS_PER_MINUTE: '2',
      INSTANCE_ID,
    });
  });

  afterAll(async () => {
    await backend.close();
    await deleteTestPrefix(backend.prefix);
    await simulator.close();
  });

  it('keeps a sane incoming X-Request-Id, in the header and the body', async () => {
    const id = 'app-7f3c9a21.retry:2';
    const response = await postChat(backend.url, { message: 'hi' }, { headers: { 'x-request-id': id } });
    expect(response.headers.get('x-request-id')).toBe(id);
    expect((response.json as ChatBody).requestId).toBe(id);
  });

  it.each([
    ['too short', 'abc'],
    ['too long', 'a'.repeat(129)],
    ['with spaces', 'hello world 12345'],
    ['with slashes', '../../etc/passwd'],
    ['with quotes', '"><script>1234'],
  ])('replaces an X-Request-Id %s with its own', async (_what, id) => {
    const response = await request(`${backend.url}/healthz`, { headers: { 'x-request-id': id } });
    const replaced = response.headers.get('x-request-id');
    expect(replaced).not.toBe(id);
    expect(replaced).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('gives every request its own id', async () => {
    const ids = await Promise.all([1, 2, 3].map(async () => (await request(`${backend.url}/healthz`)).headers));
    expect(new Set(ids.map((headers) => headers.get('x-request-id'))).size).toBe(3);
  });

  it('sets X-Instance-Id on every response, errors included', async () => {
    const responses = [
      await request(`${backend.url}/healthz`),
      await request(`${backend.url}/readyz`),
      await request(`${backend.url}/metrics`),
      await request(`${backend.url}/nowhere`),
      await request(`${backend.url}/api/chat`),
      await request(`${backend.url}/api/chat`, { body: '{' }),
      await postChat(backend.url, { message: 'hi' }, { ip: '192.0.2.50' }),
      await postChat(backend.url, { message: 'hi' }, { ip: '192.0.2.50' }),
      await postChat(backend.url, { message: 'hi' }, { ip: '192.0.2.50' }),
    ];
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 404, 405, 400, 200, 200, 429]);
    for (const response of responses) {
      expect(response.headers.get('x-instance-id')).toBe(INSTANCE_ID);
      expect(response.headers.get('x-request-id')).toBeTruthy();
    }
  });
});
