import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatAnswer, ChatService } from '../../src/chat/chat-service.js';
import { UpstreamError } from '../../src/llm/upstream-error.js';
import { type ChatQueue, createChatQueue } from '../../src/queue/chat-queue.js';
import { type ChatWorker, startChatWorker } from '../../src/queue/chat-worker.js';
import { createJobLedger } from '../../src/queue/job-ledger.js';
import { queueKeys } from '../../src/queue/queue-keys.js';
import { callerKeys } from '../../src/redis/caller-key.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { waitFor } from '../helpers/backend-process.js';
import { deletePrefix, testPrefix } from '../helpers/test-backend.js';

const ANSWER: ChatAnswer = {
  response: 'Open the document and write one sentence.',
  cached: false,
  coalesced: false,
  model: 'llama-3.1-8b-instant',
  provider: 'groq',
  usage: { promptTokens: 10, completionTokens: 9 },
};

/**
 * Upstream at capacity (the quota governor or Groq's 429) delays a job by the
 * retry-after without spending an attempt. The simulator's limits use minute
 * windows, so the chat service here answers "rate limited, retry in 400 ms"
 * three times, then answers; the queue, worker, BullMQ and Redis are real.
 */
describe('a queued job when the upstream is at capacity', () => {
  const prefix = testPrefix('queue-quota');
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const metrics = createMetrics();
  const logger = createLogger(
    { level: 'silent', instanceId: 'quota-test' },
    new Writable({ write: (_c, _e, cb) => cb() }),
  );
  const keys = queueKeys(prefix);
  let api: Redis;
  let workerConnection: Redis;
  let chatQueue: ChatQueue;
  let worker: ChatWorker;
  const calls: number[] = [];
  /** Messages other than 'help' (the first test's) answer as the second test says. */
  const scripted = new Map<string, () => Promise<ChatAnswer>>();

  const chat: Pick<ChatService, 'answer'> = {
    async answer(request) {
      const script = scripted.get(request.message);
      if (script) {
        return script();
      }
      calls.push(Date.now());
      if (calls.length <= 3) {
        throw new UpstreamError('rate_limited', 'groq', 'quota spent', undefined, 400);
      }
      return ANSWER;
    },
  };

  beforeAll(async () => {
    api = new Redis(redisUrl);
    workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    chatQueue = createChatQueue({
      redis: api,
      redisPrefix: prefix,
      keys,
      ledger: createJobLedger(api, keys),
      attempts: 1,
      resultTtlSeconds: 60,
      maxWaiting: 10,
      idempotencyTtlSeconds: 60,
      concurrency: 1,
      metrics,
      tracker: createDegradationTracker('queue', logger, metrics),
      callerKeys: callerKeys('test key'),
    });
    worker = startChatWorker({
      connection: workerConnection,
      redisPrefix: prefix,
      queue: chatQueue.queue,
      chat,
      ledger: createJobLedger(workerConnection, keys),
      instanceId: 'quota-test',
      concurrency: 1,
      backoffMs: 50,
      resultTtlSeconds: 60,
      lockMs: 5000,
      shutdownGraceMs: 1000,
      metrics,
      logger,
    });
  });

  afterAll(async () => {
    await worker.close();
    await chatQueue.close();
    await deletePrefix({ redis: api }, prefix);
    await Promise.all([api.quit(), workerConnection.quit()]);
  });

  it('is delayed by the retry-after, spends no attempt, shows "delayed", then completes', async () => {
    const { jobId } = await chatQueue.enqueue({
      callerId: 'ip:192.0.2.1',
      request: { message: 'help', history: [] },
      requestId: 'quota-test-request',
      idempotencyKey: undefined,
    });

    let seen: Awaited<ReturnType<ChatQueue['status']>>;
    await waitFor(
      async () => {
        seen = await chatQueue.status('ip:192.0.2.1', jobId);
        return seen?.status === 'processing' && seen.state === 'delayed';
      },
      5000,
      'the job to be delayed',
    );
    expect(seen).toMatchObject({ status: 'processing', state: 'delayed', position: 1 });

    await waitFor(
      async () => (await chatQueue.status('ip:192.0.2.1', jobId))?.status === 'completed',
      10_000,
      'the job to complete',
    );
    expect(await chatQueue.status('ip:192.0.2.1', jobId)).toEqual({ status: 'completed', result: ANSWER });
    // QUEUE_ATTEMPTS=1, yet four runs: waiting for quota is not an attempt.
    expect(calls).toHaveLength(4);
    const gaps = calls.slice(1).map((at, index) => at - (calls[index] as number));
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(390);
    expect(await chatQueue.status('ip:192.0.2.2', jobId)).toBeUndefined();
  });

  it('places a delayed job in line by the time it is due, not ahead of jobs that will run before it', async () => {
    const caller = 'ip:192.0.2.3';
    const enqueue = async (message: string) =>
      (
        await chatQueue.enqueue({
          callerId: caller,
          request: { message, history: [] },
          requestId: message,
          idempotencyKey: undefined,
        })
      ).jobId;
    let delays = 0;
    scripted.set('later', async () => {
      delays += 1;
      if (delays === 1) {
        throw new UpstreamError('rate_limited', 'groq', 'quota spent', undefined, 3000);
      }
      return ANSWER;
    });
    let release: () => void = () => undefined;
    scripted.set('busy', () => new Promise<ChatAnswer>((resolve) => (release = () => resolve(ANSWER))));
    scripted.set('next', async () => ANSWER);

    const later = await enqueue('later');
    await waitFor(
      async () => {
        const status = await chatQueue.status(caller, later);
        return status?.status === 'processing' && status.state === 'delayed';
      },
      5000,
      'the first job to be delayed',
    );
    const busy = await enqueue('busy');
    await waitFor(
      async () => {
        const status = await chatQueue.status(caller, busy);
        return status?.status === 'processing' && status.state === 'active';
      },
      5000,
      'the only worker to be busy',
    );
    const next = await enqueue('next');

    // BullMQ runs 'next' as soon as the worker is free, and 'later' only once its 3 s are up.
    expect(await chatQueue.status(caller, next)).toMatchObject({ state: 'waiting', position: 1 });
    expect(await chatQueue.status(caller, later)).toMatchObject({ state: 'delayed', position: 2 });

    release();
    for (const jobId of [next, later]) {
      await waitFor(
        async () => (await chatQueue.status(caller, jobId))?.status === 'completed',
        10_000,
        'the jobs to complete',
      );
    }
  });
});
