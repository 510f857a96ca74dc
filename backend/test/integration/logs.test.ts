import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { postChat, request, type TestResponse } from '../helpers/http-client.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

const API_KEY = 'gsk_log_test_secret_4f1d9c';
const MESSAGE = 'Secretly I have not opened my thesis in three weeks';
const HISTORY = 'My manager said something hurtful yesterday';

interface AccessLine {
  level: string;
  msg: string;
  instance: string;
  requestId: string;
  method: string;
  route: string;
  status: number;
  latencyMs: number;
  cacheHit?: boolean;
  caller: string;
}

/** Users' messages are health data and the key is a secret: neither may reach a log line. */
describe('logs', () => {
  const prefix = testPrefix('logs');
  let simulator: GroqSimulator;
  let backend: TestBackend;
  const responses: TestResponse[] = [];

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 1, apiKey: API_KEY });
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: API_KEY,
      MAX_MESSAGE_CHARS: '200',
      LOG_LEVEL: 'trace',
      // One upstream call per request, so the injected 500 reaches the client.
      UPSTREAM_MAX_ATTEMPTS: '1',
      INSTANCE_ID: 'logs-instance',
    });
    const ip = '198.51.100.77';
    const body = { message: MESSAGE, history: [{ role: 'user', content: HISTORY }] };
    const auth = { authorization: `Bearer ${API_KEY}`, cookie: `session=${API_KEY}` };
    responses.push(await postChat(backend.url, body, { ip, headers: { cookie: auth.cookie } }));
    responses.push(await postChat(backend.url, body, { ip }));
    responses.push(await postChat(backend.url, { message: `${MESSAGE} ${'x'.repeat(200)}` }, { ip }));
    // Not one of our tokens: refused (401) before the body is read, and the header is never logged.
    responses.push(await request(`${backend.url}/api/chat`, { body: `{"message": "${MESSAGE}"`, headers: auth }));
    simulator.configure({ failNext: 1, errorStatus: 500 });
    responses.push(await postChat(backend.url, { message: `${MESSAGE}?` }, { ip: '198.51.100.78' }));
    responses.push(await request(`${backend.url}/nowhere/${encodeURIComponent(MESSAGE)}`));
  });

  afterAll(async () => {
    await backend.close();
    await deleteTestPrefix(prefix);
    await simulator.close();
  });

  const accessLines = () =>
    backend.logs.lines.map((line) => JSON.parse(line) as AccessLine).filter((line) => line.msg === 'request');

  it('ran the requests it meant to', () => {
    expect(responses.map((response) => response.status)).toEqual([200, 200, 400, 401, 502, 404]);
  });

  it('contains neither the message text, the answer, nor the API key', () => {
    const text = backend.logs.text;
    expect(text.length).toBeGreaterThan(0);
    for (const secret of [MESSAGE, 'thesis', HISTORY, 'hurtful', API_KEY, 'gsk_', '[sim]', '198.51.100.77']) {
      expect(text, secret).not.toContain(secret);
    }
  });

  it('has one access line per request, with route template, status, latency and a caller hash', () => {
    const lines = accessLines();
    expect(lines).toHaveLength(responses.length);
    for (const [index, line] of lines.entries()) {
      const response = responses[index] as TestResponse;
      expect(line).toMatchObject({
        instance: 'logs-instance',
        requestId: response.headers.get('x-request-id'),
        status: response.status,
        level: response.status >= 500 ? 'error' : 'info',
      });
      expect(line.latencyMs).toBeGreaterThanOrEqual(0);
      expect(line.caller).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(lines.map((line) => `${line.method} ${line.route}`)).toEqual([
      ...Array(5).fill('POST /api/chat'),
      'GET unmatched',
    ]);
    expect(lines.map((line) => line.cacheHit)).toEqual([false, true, undefined, undefined, undefined, undefined]);
  });

  it('hashes callers: the same client the same hash, another client another', () => {
    const [first, second, , fromLoopback, otherClient] = accessLines();
    expect(second?.caller).toBe(first?.caller);
    expect(otherClient?.caller).not.toBe(first?.caller);
    expect(fromLoopback?.caller).not.toBe(first?.caller);
  });

  it('keys the caller tag, so hashing every IPv4 address does not reveal the caller', () => {
    const [first] = accessLines();
    const unkeyed = createHash('sha256').update('ip:198.51.100.77').digest('hex').slice(0, 16);
    expect(first?.caller).not.toBe(unkeyed);
  });
});
