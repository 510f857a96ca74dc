import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { type Job, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ChatJobData, type ChatQueue, createChatQueue } from '../../src/queue/chat-queue.js';
import { createJobLedger, type JobLedger } from '../../src/queue/job-ledger.js';
import { bullPrefix, CHAT_QUEUE_NAME, queueKeys } from '../../src/queue/queue-keys.js';
import { callerKeys } from '../../src/redis/caller-key.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { waitFor } from '../helpers/backend-process.js';
import { deletePrefix, testPrefix } from '../helpers/test-backend.js';

const LOCK_MS = 1000;
// Longer than a stall takes to be detected, so the delayed job is still delayed then.
const DELAY_MS = 2500;

/**
 * The line (positions) against BullMQ's own order, step by step through every
 * way a job enters or re-enters it: queued with its owner's priority, handed
 * back at shutdown, delayed then due, recovered from a stalled worker. Jobs are
 * fetched by hand (BullMQ's manual-fetch pattern) and the ledger is told what
 * the real worker would tell it; BullMQ's order is read from its keys: the
 * wait list (served first, from its tail), then the prioritized set with the
 * delayed jobs already due (promoted at the next fetch, behind what is there),
 * then the delayed set.
 */
describe('queue line: the order BullMQ runs', () => {
  const prefix = testPrefix('queue-line');
  const keys = queueKeys(prefix);
  const bull = `${bullPrefix(prefix)}:${CHAT_QUEUE_NAME}`;
  const metrics = createMetrics();
  const logger = createLogger(
    { level: 'silent', instanceId: 'line-test' },
    new Writable({ write: (_c, _e, cb) => cb() }),
  );
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  let api: Redis;
  let connection: Redis;
  let chatQueue: ChatQueue;
  let ledger: JobLedger;
  let fetcher: Worker<ChatJobData>;
  let checker: Worker<ChatJobData>;

  beforeAll(() => {
    api = new Redis(redisUrl);
    connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    chatQueue = createChatQueue({
      redis: api,
      redisPrefix: prefix,
      keys,
      ledger: createJobLedger(api, keys),
      attempts: 3,
      resultTtlSeconds: 60,
      maxWaiting: 100,
      idempotencyTtlSeconds: 60,
      concurrency: 1,
      metrics,
      tracker: createDegradationTracker('queue', logger, metrics),
      callerKeys: callerKeys('test key'),
    });
    ledger = createJobLedger(connection, keys);
    // Manual fetching: no processor, so locks are never extended and a fetched job stalls once its lock expires.
    fetcher = new Worker<ChatJobData>(CHAT_QUEUE_NAME, null, {
      connection,
      prefix: bullPrefix(prefix),
      lockDuration: LOCK_MS,
    });
    checker = new Worker<ChatJobData>(CHAT_QUEUE_NAME, null, {
      connection,
      prefix: bullPrefix(prefix),
      stalledInterval: 200,
      maxStalledCount: 1,
    });
  });

  afterAll(async () => {
    await Promise.all([fetcher.close(), checker.close()]);
    await chatQueue.close();
    await deletePrefix({ redis: api }, prefix);
    await Promise.all([api.quit(), connection.quit()]);
  });

  const names = new Map<string, string>();
  async function enqueue(owner: string, name: string) {
    const { jobId } = await chatQueue.enqueue({
      callerId: `user:${owner}`,
      request: { message: `${name} ${randomUUID()}`, history: [] },
      requestId: name,
      idempotencyKey: undefined,
    });
    names.set(jobId, name);
  }

  const named = (jobIds: string[]) => jobIds.map((jobId) => names.get(jobId) ?? jobId);

  async function bullOrder(): Promise<string[]> {
    const [wait, prioritized, delayed, counter] = await Promise.all([
      api.lrange(`${bull}:wait`, 0, -1),
      api.zrange(`${bull}:prioritized`, '0', '-1', 'WITHSCORES'),
      api.zrange(`${bull}:delayed`, '0', '-1', 'WITHSCORES'),
      api.get(`${bull}:pc`),
    ]);
    const ready: { jobId: string; score: number }[] = [];
    for (let index = 0; index + 1 < prioritized.length; index += 2) {
      ready.push({ jobId: prioritized[index] as string, score: Number(prioritized[index + 1]) });
    }
    const later: string[] = [];
    let entries = Number(counter ?? 0);
    for (let index = 0; index + 1 < delayed.length; index += 2) {
      const jobId = delayed[index] as string;
      // BullMQ's delayed score is the due time × 2^12 + a sequence.
      if (Math.floor(Number(delayed[index + 1]) / 0x1000) > Date.now()) {
        later.push(jobId);
        continue;
      }
      entries += 1;
      const priority = Number(await api.hget(`${bull}:${jobId}`, 'priority'));
      ready.push({ jobId, score: priority * 0x100000000 + entries });
    }
    ready.sort((x, y) => x.score - y.score);
    return named([...wait.reverse(), ...ready.map(({ jobId }) => jobId), ...later]);
  }

  const lineOrder = async () => named(await api.zrange(keys.line, '0', '-1'));

  async function expectSameOrder(expected: string[]) {
    expect(await bullOrder()).toEqual(expected);
    expect(await lineOrder()).toEqual(expected);
  }

  /** Fetches the next job as a worker would, and tells the ledger it started. */
  async function fetchNext(token: string): Promise<Job<ChatJobData>> {
    const job = await fetcher.getNextJob(token, { block: false });
    if (!job?.id) {
      throw new Error('no job to fetch');
    }
    await ledger.start(job.id);
    return job;
  }

  it('matches BullMQ through arrivals, hand-back, delays and stalls', async () => {
    for (const [owner, name] of [
      ['a', 'a1'],
      ['a', 'a2'],
      ['a', 'a3'],
      ['b', 'b1'],
      ['a', 'a4'],
      ['c', 'c1'],
      ['b', 'b2'],
    ] as const) {
      await enqueue(owner, name);
    }
    // Each owner's first job, then their second, …; arrival order within a round.
    await expectSameOrder(['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4']);

    // Handed back at shutdown: the front of its priority.
    const token = randomUUID();
    let job = await fetchNext(token);
    await expectSameOrder(['b1', 'c1', 'a2', 'b2', 'a3', 'a4']);
    await ledger.park(job.id as string, 'handed_back', 0);
    await job.moveToWait(token);
    await expectSameOrder(['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4']);

    // Delayed (quota): behind every runnable job until due.
    job = await fetchNext(token);
    await ledger.park(job.id as string, 'delayed', DELAY_MS);
    await job.moveToDelayed(Date.now() + DELAY_MS, token);
    await expectSameOrder(['b1', 'c1', 'a2', 'b2', 'a3', 'a4', 'a1']);

    // Two jobs whose worker dies: recovered ahead of every prioritized job, the last recovered first.
    await fetchNext(token);
    await fetchNext(token);
    let parks = Promise.resolve();
    const recovered: string[] = [];
    checker.on('stalled', (jobId) => {
      recovered.push(jobId);
      parks = parks.then(() => ledger.park(jobId, 'stalled', 0).then(() => undefined));
    });
    void checker.startStalledCheckTimer();
    await waitFor(async () => recovered.length === 2, 10_000, 'both fetched jobs to stall');
    await parks;
    const [first, second] = named(recovered);
    await expectSameOrder([second as string, first as string, 'a2', 'b2', 'a3', 'a4', 'a1']);

    // Now due: the delayed job joins its priority when a worker next fetches, behind what is there.
    const delayed = job.id as string;
    await waitFor(
      async () => Number(await api.hget(keys.job(delayed), 'readyAt')) < Date.now() - 20,
      5000,
      'the delay to pass',
    );
    await enqueue('d', 'd1');
    // Until then it is told where it will enter, behind what arrived before the fetch.
    expect(await bullOrder()).toEqual([second, first, 'd1', 'a1', 'a2', 'b2', 'a3', 'a4']);
    expect(await chatQueue.status('user:a', delayed)).toMatchObject({ state: 'delayed', position: 4 });
    await fetchNext(token);
    await expectSameOrder([first as string, 'd1', 'a1', 'a2', 'b2', 'a3', 'a4']);
  });
});
