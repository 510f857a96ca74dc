import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { signUp } from '../helpers/accounts.js';
import { readEvents, type ServerEvent } from '../helpers/sse.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

/** Streams that never lie: live deltas, cached replays, and an explicit error for every cut. */
describe('POST /api/chat/stream and streamed /v1/chat/completions', () => {
  const prefix = testPrefix('stream');
  let simulator: GroqSimulator;
  let backend: TestBackend;
  let headers: Record<string, string>;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 20, chunkDelayMs: 20, apiKey: 'stream-key' });
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'stream-key',
      GROQ_RPM: '0',
      GROQ_TPM: '0',
      GROQ_TIMEOUT_MS: '1000',
      UPSTREAM_RETRY_BASE_MS: '10',
      USER_REQUESTS_PER_MINUTE: '1000',
    });
    const user = await signUp(backend.url);
    headers = { 'content-type': 'application/json', ...user.headers };
  });

  beforeEach(() => simulator.reset());

  afterAll(async () => {
    await backend?.close();
    await deleteTestPrefix(prefix);
    await simulator?.close();
  });

  const stream = (message: string, init: RequestInit = {}) =>
    fetch(`${backend.url}/api/chat/stream`, { method: 'POST', headers, body: JSON.stringify({ message }), ...init });
  const deltas = (events: ServerEvent[]) =>
    events.filter((event) => event.event === 'delta').map((event) => (event.json as { text: string }).text);
  const upstreamCalls = () => simulator.stats().calls.filter((call) => call.status === 200).length;

  it('sends the upstream deltas as they come, then one done with the whole answer and its usage', async () => {
    const response = await stream('How do I start the dishes? (live)');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await readEvents(response);
    const pieces = deltas(events);
    expect(pieces.length).toBeGreaterThan(5);
    expect(events.map((event) => event.event).filter((name) => name !== 'delta')).toEqual(['done']);
    const done = events.at(-1)?.json as {
      response: string;
      cached: boolean;
      usage: { promptTokens: number; completionTokens: number };
    };
    expect(done).toMatchObject({ cached: false, provider: 'groq', requestId: expect.any(String) });
    expect(pieces.join('')).toBe(done.response);
    // The usage is the upstream's own, from its finishing chunk.
    expect(done.usage.promptTokens + done.usage.completionTokens).toBe(simulator.stats().calls[0]?.tokens);
    // Live: the first piece came well before the last.
    expect((events.at(-1) as ServerEvent).at - (events[0] as ServerEvent).at).toBeGreaterThan(100);
  });

  it('replays a cached answer as several pieces, marked cached, with the same usage', async () => {
    const first = await readEvents(await stream('How do I start the dishes? (cached)'));
    const callsBefore = upstreamCalls();
    const second = await readEvents(await stream('How do I start the dishes? (cached)'));
    expect(upstreamCalls()).toBe(callsBefore);
    expect(deltas(second).length).toBeGreaterThan(1);
    const [a, b] = [first.at(-1)?.json, second.at(-1)?.json] as { response: string; usage: unknown; cached: boolean }[];
    expect(b).toMatchObject({ cached: true, response: a?.response, usage: a?.usage });
  });

  it('ends a stream cut after its first words with an error event, caches nothing, and asks upstream again next time', async () => {
    simulator.configure({ cutStreamAfterChunks: 3 });
    const events = await readEvents(await stream('Cut me off (stream)'));
    expect(deltas(events)).toHaveLength(3);
    expect(events.at(-1)).toMatchObject({ event: 'error', json: { error: { code: 'upstream_interrupted' } } });
    expect(events.some((event) => event.event === 'done')).toBe(false);
    const requestsAfterCut = simulator.stats().requests;
    // One call, no retry and no fallback once words were sent.
    expect(requestsAfterCut).toBe(1);

    simulator.configure({ cutStreamAfterChunks: 0 });
    const again = await readEvents(await stream('Cut me off (stream)'));
    expect(simulator.stats().requests).toBe(requestsAfterCut + 1);
    expect(again.at(-1)).toMatchObject({ event: 'done', json: { cached: false } });
  });

  it('ends a stalled stream with an error once the upstream is silent for its timeout', async () => {
    simulator.configure({ stallAfterChunks: 2 });
    const started = performance.now();
    const events = await readEvents(await stream('Stall me (stream)'));
    expect(events.at(-1)).toMatchObject({ event: 'error', json: { error: { code: 'upstream_interrupted' } } });
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('retries a failure before the first word: the client sees an ordinary stream', async () => {
    simulator.configure({ failNext: 1, errorStatus: 500 });
    const events = await readEvents(await stream('Fail first (stream)'));
    expect(events.at(-1)).toMatchObject({ event: 'done' });
    expect(simulator.stats().byStatus).toMatchObject({ 500: 1, 200: 1 });
  });

  it('answers a failure before the stream began as an ordinary JSON error', async () => {
    const response = await fetch(`${backend.url}/api/chat/stream`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ message: '' }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: 'invalid_request' } });
  });

  it('closes the upstream call within a second when the client leaves mid-stream', async () => {
    simulator.configure({ chunkDelayMs: 100 });
    const controller = new AbortController();
    const response = await stream('Leave me halfway (stream)', { signal: controller.signal });
    await readEvents(response, (event) => event.event === 'delta').catch(() => undefined);
    const leftAt = Date.now();
    controller.abort();
    await expect.poll(() => simulator.stats().streamsAbandoned, { timeout: 3000 }).toBe(1);
    expect((simulator.stats().lastAbandonedAt as number) - leftAt).toBeLessThan(1000);
  });

  it('on /v1, ends a cut stream with an error chunk and no [DONE]', async () => {
    simulator.configure({ cutStreamAfterChunks: 2 });
    const response = await fetch(`${backend.url}/v1/chat/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        model: 'llama-3.1-8b-instant',
        messages: [{ role: 'user', content: 'Cut me off (gateway)' }],
        stream: true,
      }),
    });
    const events = await readEvents(response);
    expect(events.at(-1)?.json).toMatchObject({ error: { code: 'upstream_interrupted', type: 'server_error' } });
    expect(events.some((event) => event.data === '[DONE]')).toBe(false);
  });

  it('counts how streams ended', async () => {
    const metrics = await (await fetch(`${backend.url}/metrics`)).text();
    expect(metrics).toMatch(/focus_streams_total\{route="\/api\/chat\/stream",outcome="done"\} [1-9]/);
    expect(metrics).toMatch(/focus_streams_total\{route="\/api\/chat\/stream",outcome="error"\} [1-9]/);
    expect(metrics).toMatch(/focus_upstream_calls_total\{provider="groq",model="[^"]+",outcome="interrupted"\} [1-9]/);
  });
});
