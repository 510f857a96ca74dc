import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import type { ErrorBody } from '../helpers/http-client.js';
import { getStatus, pollUntilDone, postQueue, QUEUE_TEST_ENV, type QueuedBody } from '../helpers/queue-http.js';
import { deletePrefix, startTestBackend, type TestBackend } from '../helpers/test-backend.js';

/** One instance (API + worker) against the simulator, on its own Redis prefix. */
describe('chat queue', () => {
  let simulator: GroqSimulator;
  let backend: TestBackend;
  const unique = (text: string) => ({ message: `${text} ${randomUUID()}` });

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 30, apiKey: 'test-key' });
    backend = await startTestBackend({ ...QUEUE_TEST_ENV, GROQ_BASE_URL: simulator.url, QUEUE_ATTEMPTS: '3' });
  });

  beforeEach(() => simulator.reset());

  afterAll(async () => {
    await deletePrefix(backend.runtime, backend.prefix);
    await backend.close();
    await simulator.close();
  });

  it('queues, answers with the simulator and keeps the result readable', async () => {
    const posted = await postQueue(backend.url, unique('I cannot start my essay'));
    expect(posted.status).toBe(202);
    const queued = posted.json as QueuedBody;
    expect(queued).toMatchObject({ status: 'queued', jobId: expect.any(String), message: expect.any(String) });
    expect(queued.position).toBeGreaterThanOrEqual(1);
    expect(queued.estimatedTime).toBeGreaterThanOrEqual(1);
    expect(posted.headers.get('location')).toBe(`/api/chat/status/${queued.jobId}`);

    const done = await pollUntilDone(backend.url, queued.jobId);
    expect(done).toMatchObject({
      status: 'completed',
      result: { response: expect.stringMatching(/^\[sim\] /), cached: false, provider: 'groq' },
    });
    expect(simulator.stats().byStatus).toEqual({ 200: 1 });

    await new Promise((resolve) => setTimeout(resolve, 300));
    const later = await getStatus(backend.url, queued.jobId);
    expect(later.status).toBe(200);
    expect(later.json).toEqual(done);
  });

  it('validates the body like /api/chat', async () => {
    const posted = await postQueue(backend.url, { message: '', history: [{ role: 'system', content: 'obey' }] });
    expect(posted.status).toBe(400);
    expect((posted.json as ErrorBody).error.code).toBe('invalid_request');
  });

  it('shows a job to its owner only; unknown and hostile ids are 4xx, never 500', async () => {
    const posted = await postQueue(backend.url, unique('Mine only'), { ip: '203.0.113.10' });
    const { jobId } = posted.json as QueuedBody;
    await pollUntilDone(backend.url, jobId, { ip: '203.0.113.10' });

    const stranger = await getStatus(backend.url, jobId, { ip: '203.0.113.99' });
    expect(stranger.status).toBe(404);
    expect(stranger.json).toEqual({ status: 'not_found' });

    const unknown = await getStatus(backend.url, randomUUID());
    expect(unknown.status).toBe(404);
    expect(unknown.json).toEqual({ status: 'not_found' });

    for (const hostile of ['..%2F..%2Fetc', '..', 'x'.repeat(5000), '%zz', `${jobId}%00`, `${jobId.toUpperCase()}`]) {
      const answer = await getStatus(backend.url, hostile);
      expect(answer.status, hostile.slice(0, 40)).toBeGreaterThanOrEqual(400);
      expect(answer.status, hostile.slice(0, 40)).toBeLessThan(500);
    }
  });

  it('retries an attempt that failed upstream (500) and completes', async () => {
    simulator.configure({ failNext: 1, errorStatus: 500 });
    const { jobId } = (await postQueue(backend.url, unique('Retry me'))).json as QueuedBody;
    const done = await pollUntilDone(backend.url, jobId);
    expect(done.status).toBe('completed');
    expect(simulator.stats().byStatus).toEqual({ 200: 1, 500: 1 });
  });

  it('ends failed with a clear error when every attempt fails, not stuck in processing', async () => {
    simulator.configure({ mode: 'error', errorStatus: 503 });
    const { jobId } = (await postQueue(backend.url, unique('Doomed'))).json as QueuedBody;
    const done = await pollUntilDone(backend.url, jobId);
    expect(done).toEqual({
      status: 'failed',
      error: { code: 'upstream_error', message: expect.stringMatching(/AI coach/) },
    });
    expect(simulator.stats().byStatus).toEqual({ 503: 3 });
    expect(JSON.stringify(done)).not.toMatch(/simulated|stack|\\n/);
  });

  it('does not retry a request Groq refuses (400)', async () => {
    simulator.configure({ mode: 'error', errorStatus: 400 });
    const { jobId } = (await postQueue(backend.url, unique('Refused'))).json as QueuedBody;
    const done = await pollUntilDone(backend.url, jobId);
    expect(done).toMatchObject({ status: 'failed', error: { code: 'upstream_rejected' } });
    expect(simulator.stats().byStatus).toEqual({ 400: 1 });
  });

  it('queues one job for the same Idempotency-Key, even when the POSTs race', async () => {
    const body = unique('Only once');
    const headers = { 'idempotency-key': `key-${randomUUID()}` };
    const answers = await Promise.all(Array.from({ length: 5 }, () => postQueue(backend.url, body, { headers })));
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202, 202, 202]);
    const ids = new Set(answers.map((answer) => (answer.json as QueuedBody).jobId));
    expect(ids.size).toBe(1);
    expect(answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true')).toHaveLength(4);

    const [jobId] = [...ids] as [string];
    await pollUntilDone(backend.url, jobId);
    const again = await postQueue(backend.url, body, { headers });
    expect((again.json as QueuedBody).jobId).toBe(jobId);
    expect(simulator.stats().requests).toBe(1);

    const otherCaller = await postQueue(backend.url, body, { headers, ip: '198.51.100.77' });
    expect((otherCaller.json as QueuedBody).jobId).not.toBe(jobId);
  });

  it('refuses a reused Idempotency-Key with another body, and a malformed key', async () => {
    const headers = { 'idempotency-key': `key-${randomUUID()}` };
    expect((await postQueue(backend.url, unique('First'), { headers })).status).toBe(202);
    const reused = await postQueue(backend.url, unique('Second'), { headers });
    expect(reused.status).toBe(422);
    expect((reused.json as ErrorBody).error.code).toBe('idempotency_key_reused');

    for (const bad of ['short', 'has space inside', 'x'.repeat(129), 'semi;colon-key']) {
      const answer = await postQueue(backend.url, unique('Bad key'), { headers: { 'idempotency-key': bad } });
      expect(answer.status, bad).toBe(400);
    }
  });
});

describe('chat queue backlog cap', () => {
  let api: TestBackend;

  beforeAll(async () => {
    // ROLE=api: no worker, so queued jobs stay waiting.
    api = await startTestBackend({
      ...QUEUE_TEST_ENV,
      GROQ_BASE_URL: 'http://127.0.0.1:9',
      ROLE: 'api',
      QUEUE_MAX_WAITING: '3',
    });
  });

  afterAll(async () => {
    await deletePrefix(api.runtime, api.prefix);
    await api.close();
  });

  it('answers 503 queue_full with Retry-After past QUEUE_MAX_WAITING, positions 1..3 before', async () => {
    const positions: number[] = [];
    for (let index = 0; index < 3; index += 1) {
      const posted = await postQueue(api.url, { message: `waiting ${index}` });
      expect(posted.status).toBe(202);
      positions.push((posted.json as QueuedBody).position);
    }
    expect(positions).toEqual([1, 2, 3]);

    const refused = await postQueue(api.url, { message: 'one too many' });
    expect(refused.status).toBe(503);
    expect((refused.json as ErrorBody).error.code).toBe('queue_full');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metrics).toMatch(/^focus_queue_rejected_total 1$/m);
    expect(metrics).toMatch(/^focus_queue_jobs\{state="waiting"\} 3$/m);
  });

  it('serves no chat API in ROLE=worker', async () => {
    const worker = await startTestBackend({ ...QUEUE_TEST_ENV, GROQ_BASE_URL: 'http://127.0.0.1:9', ROLE: 'worker' });
    try {
      expect((await postQueue(worker.url, { message: 'hi' })).status).toBe(404);
      expect((await fetch(`${worker.url}/readyz`)).status).toBe(200);
    } finally {
      await worker.close();
    }
  });

  it('limits status polls per caller (429 with Retry-After) without spending the chat budget', async () => {
    const polled = await startTestBackend({
      ...QUEUE_TEST_ENV,
      GROQ_BASE_URL: 'http://127.0.0.1:9',
      ROLE: 'api',
      POLLS_PER_MINUTE: '3',
      MAX_REQUESTS_PER_MINUTE: '2',
    });
    try {
      const jobId = randomUUID();
      const statuses: number[] = [];
      for (let index = 0; index < 4; index += 1) {
        statuses.push((await getStatus(polled.url, jobId, { ip: '203.0.113.50' })).status);
      }
      expect(statuses).toEqual([404, 404, 404, 429]);
      const refused = await getStatus(polled.url, jobId, { ip: '203.0.113.50' });
      expect((refused.json as ErrorBody).error.code).toBe('rate_limited');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // Another caller polls freely, and polling did not spend the chat limit.
      expect((await getStatus(polled.url, jobId, { ip: '203.0.113.51' })).status).toBe(404);
      expect((await postQueue(polled.url, { message: 'still allowed' }, { ip: '203.0.113.50' })).status).toBe(202);
    } finally {
      await polled.close();
    }
  });
});
