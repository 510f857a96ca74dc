import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { type ChatQueue, createChatQueue, type Enqueued } from '../../src/queue/chat-queue.js';
import { createJobLedger } from '../../src/queue/job-ledger.js';
import { bullPrefix, queueKeys } from '../../src/queue/queue-keys.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { waitFor } from '../helpers/backend-process.js';
import { QUEUE_TEST_ENV } from '../helpers/queue-http.js';
import { deletePrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

const SIM_LATENCY_MS = 200;
const RESULT_TTL_SECONDS = 600;

/**
 * One worker (QUEUE_CONCURRENCY=1, so the order is strict) behind a slow
 * simulator, fed by a producer of the test's own on the same prefix, so the
 * callers are user ids and no HTTP-side key (rate limits, active users) mixes
 * in: a heavy caller does not starve the others, the places in line the queue
 * reports are the order BullMQ really runs, and one caller's jobs can be
 * exported and deleted without a trace.
 */
describe('queue: a fair share per caller, export and deletion', () => {
  const prefix = testPrefix('queue-fair');
  const keys = queueKeys(prefix);
  const metrics = createMetrics();
  const logger = createLogger(
    { level: 'silent', instanceId: 'fair-test' },
    new Writable({ write: (_c, _e, cb) => cb() }),
  );
  let simulator: GroqSimulator;
  let backend: TestBackend;
  let api: Redis;
  let chatQueue: ChatQueue;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: SIM_LATENCY_MS, apiKey: 'test-key' });
    backend = await startTestBackend({
      ...QUEUE_TEST_ENV,
      REDIS_PREFIX: prefix,
      GROQ_BASE_URL: simulator.url,
      QUEUE_CONCURRENCY: '1',
      QUEUE_RESULT_TTL_SECONDS: String(RESULT_TTL_SECONDS),
    });
    api = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    chatQueue = createChatQueue({
      redis: api,
      redisPrefix: prefix,
      keys,
      ledger: createJobLedger(api, keys),
      attempts: 3,
      resultTtlSeconds: RESULT_TTL_SECONDS,
      maxWaiting: 500,
      idempotencyTtlSeconds: 600,
      concurrency: 1,
      metrics,
      tracker: createDegradationTracker('queue', logger, metrics),
      // The backend's own, so its worker and this producer name a caller alike.
      callerKeys: backend.runtime.callerKeys,
    });
  });

  afterAll(async () => {
    await chatQueue.close();
    await backend.close();
    await deletePrefix({ redis: api }, prefix);
    await api.quit();
    await simulator.close();
  });

  const enqueue = (callerId: string, message: string, options: { idempotencyKey?: string; history?: string } = {}) =>
    chatQueue.enqueue({
      callerId,
      request: {
        message,
        history: options.history ? [{ role: 'user', content: options.history }] : [],
      },
      requestId: randomUUID(),
      idempotencyKey: options.idempotencyKey,
    });

  const untilDone = (callerId: string, jobIds: string[]) =>
    waitFor(
      async () => {
        const statuses = await Promise.all(jobIds.map((jobId) => chatQueue.status(callerId, jobId)));
        return statuses.every((status) => status?.status === 'completed');
      },
      30_000,
      `${jobIds.length} jobs to complete`,
    );

  /** When each job was admitted, first started and finished (Redis time, ms), from its record. */
  async function timeline(jobIds: string[]) {
    return Promise.all(
      jobIds.map(async (jobId) => {
        const [enqueuedAt, startedAt, finishedAt] = await api.hmget(
          keys.job(jobId),
          'enqueuedAt',
          'firstStartedAt',
          'finishedAt',
        );
        return { jobId, enqueuedAt: Number(enqueuedAt), startedAt: Number(startedAt), finishedAt: Number(finishedAt) };
      }),
    );
  }

  it("keeps one caller's own messages in the order they were sent, even once some of them have started", async () => {
    const first: Enqueued[] = [];
    for (let index = 0; index < 6; index += 1) {
      first.push(await enqueue('user:c', `own order ${index} ${randomUUID()}`));
    }
    // Three have started (two finished): counting the owner's jobs alone would now put a new message ahead of
    // their last one.
    await waitFor(
      async () => (await timeline(first.map(({ jobId }) => jobId))).filter((job) => job.startedAt > 0).length >= 3,
      10_000,
      'three of the jobs to start',
    );
    const later = await enqueue('user:c', `own order later ${randomUUID()}`);
    const all = [...first, later].map(({ jobId }) => jobId);
    await untilDone('user:c', all);
    const started = (await timeline(all)).map((job) => job.startedAt);
    expect(started).toEqual([...started].sort((x, y) => x - y));
  });

  it("answers a light caller's first message before a heavy caller's fourth, at the places it reported", async () => {
    const heavy: Enqueued[] = [];
    for (let index = 0; index < 20; index += 1) {
      heavy.push(await enqueue('user:a', `heavy ${index} ${randomUUID()}`));
    }
    const light = await enqueue('user:b', `light ${randomUUID()}`);

    // Right after the light caller queued: where every heavy job stands, read between two clock readings.
    const snapshot = await Promise.all(
      heavy.map(async ({ jobId }) => {
        const before = Date.now();
        const status = await chatQueue.status('user:a', jobId);
        return { jobId, status, before, after: Date.now() };
      }),
    );

    await untilDone(
      'user:a',
      heavy.map(({ jobId }) => jobId),
    );
    await untilDone('user:b', [light.jobId]);
    const runs = await timeline([...heavy.map(({ jobId }) => jobId), light.jobId]);
    const run = (jobId: string) => runs.find((entry) => entry.jobId === jobId) as (typeof runs)[number];

    const byFinish = [...runs].sort((x, y) => x.finishedAt - y.finishedAt).map(({ jobId }) => jobId);
    const fourthHeavy = heavy[3]?.jobId as string;
    expect(byFinish.indexOf(light.jobId)).toBeLessThan(byFinish.indexOf(fourthHeavy));

    /**
     * A place told at time t is true if it is 1 + the jobs queued before it was
     * told that started after t and before this one. A start in the same ms as
     * t could be either side: the place must lie between the two counts.
     */
    function expectTrue(jobId: string, position: number, from: number, to: number, queuedBefore: string[]) {
      const own = run(jobId);
      const ahead = (after: (start: number) => boolean) =>
        queuedBefore.map(run).filter((other) => after(other.startedAt) && other.startedAt < own.startedAt).length;
      const fewest = ahead((start) => start > to);
      const most = ahead((start) => start >= from);
      expect(
        position - 1,
        `job ${jobId}: told ${position}, ${fewest}..${most} started before it`,
      ).toBeGreaterThanOrEqual(fewest);
      expect(position - 1, `job ${jobId}: told ${position}, ${fewest}..${most} started before it`).toBeLessThanOrEqual(
        most,
      );
    }

    // Every place told at admission (Redis time of the admission, so exact).
    const all = [...heavy, light].map(({ jobId }) => jobId);
    for (const [index, { jobId, position }] of [...heavy, light].entries()) {
      const { enqueuedAt } = run(jobId);
      expectTrue(jobId, position, enqueuedAt, enqueuedAt, all.slice(0, index));
    }
    expect(light.position).toBeLessThanOrEqual(2);
    // Every place polled once the light caller had queued.
    let polled = 0;
    for (const { jobId, status, before, after } of snapshot) {
      if (status?.status === 'processing' && status.state === 'waiting') {
        polled += 1;
        expectTrue(
          jobId,
          status.position,
          before,
          after,
          all.filter((other) => other !== jobId),
        );
      }
    }
    expect(polled).toBeGreaterThanOrEqual(15);
  });

  it("exports one caller's jobs, then deletes every trace of them while others' jobs go on", async () => {
    const alice = 'user:alice';
    const owner = backend.runtime.callerKeys.hash(alice);
    const secret = `alice-secret-${randomUUID()}`;
    const history = `alice-history-${randomUUID()}`;

    const done = await enqueue(alice, `${secret} done`, { history, idempotencyKey: `alice-key-${randomUUID()}` });
    await untilDone(alice, [done.jobId]);
    // Slow enough that the job is surely still running, locked, when it is deleted.
    simulator.configure({ latencyMs: 1500 });
    const running = await enqueue(alice, `${secret} running`);
    await waitFor(
      async () => (await chatQueue.status(alice, running.jobId))?.status === 'processing',
      5000,
      'the second job to be queued',
    );
    const waiting = [await enqueue(alice, `${secret} waiting 1`), await enqueue(alice, `${secret} waiting 2`)];
    const others = [await enqueue('user:bob', `bob ${randomUUID()}`), await enqueue('user:bob', `bob ${randomUUID()}`)];
    await waitFor(
      async () => {
        const status = await chatQueue.status(alice, running.jobId);
        return status?.status === 'processing' && status.state === 'active';
      },
      5000,
      "alice's second job to be running",
    );
    simulator.configure({ latencyMs: SIM_LATENCY_MS });

    // The owner's keys expire on their own, and an id whose job is gone is skipped and dropped.
    for (const what of ['line', 'jobs', 'idem'] as const) {
      expect(await api.pttl(keys.owner(owner, what))).toBeGreaterThan(0);
    }
    const stale = randomUUID();
    await api.zadd(keys.owner(owner, 'jobs'), Date.now() + 60_000, stale);

    const exported = await chatQueue.owned(alice);
    expect(await api.zscore(keys.owner(owner, 'jobs'), stale)).toBeNull();
    const byId = new Map(exported.map((job) => [job.jobId, job]));
    expect([...byId.keys()].sort()).toEqual([done, running, ...waiting].map(({ jobId }) => jobId).sort());
    expect(byId.get(done.jobId)).toMatchObject({
      state: 'completed',
      request: { message: `${secret} done`, history: [{ role: 'user', content: history }] },
      result: { provider: 'groq' },
    });
    expect(byId.get(running.jobId)).toMatchObject({ state: 'active', request: { message: `${secret} running` } });
    expect(byId.get(waiting[1]?.jobId as string)).toMatchObject({ state: 'waiting' });
    expect(Number.isNaN(Date.parse(byId.get(done.jobId)?.createdAt ?? ''))).toBe(false);
    expect((await chatQueue.owned('user:bob')).map(({ jobId }) => jobId).sort()).toEqual(
      others.map(({ jobId }) => jobId).sort(),
    );

    // The search below sees them before (BullMQ's jobs, the records, the owner's keys).
    expect((await traces(owner, secret)).length).toBeGreaterThanOrEqual(4);
    await chatQueue.forget(alice);
    // BullMQ cannot remove a running job: its worker does once it ends.
    expect(await chatQueue.queue.getJobState(running.jobId)).toBe('active');
    expect(await chatQueue.owned(alice)).toEqual([]);
    expect(await chatQueue.status(alice, done.jobId)).toBeUndefined();

    // Bob's jobs still complete, after the running one ended (its worker then removes it).
    await untilDone(
      'user:bob',
      others.map(({ jobId }) => jobId),
    );
    let left = await traces(owner, secret);
    for (const deadline = Date.now() + 5000; left.length > 0 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = await traces(owner, secret);
    }
    expect(left).toEqual([]);
    expect(await traces(owner, history)).toEqual([]);
    expect((await chatQueue.owned('user:bob')).length).toBe(2);
  });

  /**
   * Keys under the prefix whose value holds the text, or queue keys (ours and
   * BullMQ's) whose name holds the owner's hash. The chat service's own
   * per-user keys (response cache index, usage budget) are its layer's to delete.
   */
  async function traces(owner: string, text: string): Promise<string[]> {
    const found: string[] = [];
    const queueKey = (key: string) => key.startsWith(`${prefix}{queue}:`) || key.startsWith(bullPrefix(prefix));
    const stream = api.scanStream({ match: `${prefix}*`, count: 500 });
    for await (const batch of stream as AsyncIterable<string[]>) {
      for (const key of batch) {
        if ((queueKey(key) && key.includes(owner)) || (await readValue(key)).includes(text)) {
          found.push(key);
        }
      }
    }
    return found;
  }

  async function readValue(key: string): Promise<string> {
    switch (await api.type(key)) {
      case 'string':
        return (await api.get(key)) ?? '';
      case 'hash':
        return JSON.stringify(await api.hgetall(key));
      case 'list':
        return JSON.stringify(await api.lrange(key, 0, -1));
      case 'set':
        return JSON.stringify(await api.smembers(key));
      case 'zset':
        return JSON.stringify(await api.zrange(key, '0', '-1'));
      case 'stream':
        return JSON.stringify(await api.xrange(key, '-', '+'));
      default:
        return '';
    }
  }
});
