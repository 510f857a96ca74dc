import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ChatRequest } from '../chat/chat-request.js';
import type { ChatAnswer } from '../chat/chat-service.js';
import { AppError, idempotencyKeyReused, queueFull, serviceUnavailable } from '../errors.js';
import { hashCaller } from '../redis/caller-key.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Metrics } from '../telemetry/metrics.js';
import { DEFAULT_JOB_MS, type EtaFallback, estimateSeconds, type JobProgress, type Throughput } from './eta.js';
import { idempotencySlot, requestFingerprint } from './idempotency.js';
import type { JobLedger, JobRecord, PublicError } from './job-ledger.js';
import { bullPrefix, CHAT_QUEUE_NAME, newJobId, type QueueKeys } from './queue-keys.js';

export interface ChatJobData {
  request: ChatRequest;
  /** The POST's request id, so the worker's log lines can be matched to it. */
  requestId: string;
}

export interface EnqueueInput {
  callerId: string;
  request: ChatRequest;
  requestId: string;
  idempotencyKey: string | undefined;
}

export interface Enqueued {
  jobId: string;
  position: number;
  estimatedTime: number;
  /** True when an Idempotency-Key matched an earlier POST: no new job was queued. */
  replayed: boolean;
}

export type JobStatus =
  | { status: 'completed'; result: ChatAnswer }
  | { status: 'failed'; error: PublicError }
  | { status: 'processing'; state: 'waiting' | 'active' | 'delayed'; position: number; estimatedTime: number };

export interface ChatQueue {
  readonly queue: Queue<ChatJobData>;
  enqueue(input: EnqueueInput): Promise<Enqueued>;
  /** The job as its owner sees it; undefined for an unknown job or anyone else's. */
  status(callerId: string, jobId: string): Promise<JobStatus | undefined>;
  counts(): Promise<{ waiting: number; active: number; delayed: number }>;
  close(): Promise<void>;
}

export interface ChatQueueOptions {
  /** The request-path connection: fails fast, so a POST during a Redis outage is a quick 503. */
  redis: Redis;
  redisPrefix: string;
  keys: QueueKeys;
  ledger: JobLedger;
  attempts: number;
  resultTtlSeconds: number;
  maxWaiting: number;
  idempotencyTtlSeconds: number;
  /** Concurrency assumed for estimates until the cluster has measured its pace. */
  concurrency: number;
  metrics: Metrics;
  tracker: DegradationTracker;
}

/** A record lives this long while its job waits; once finished, QUEUE_RESULT_TTL_SECONDS. */
const PENDING_TTL_SECONDS = 86_400;
const RETRY_AFTER_MAX_SECONDS = 60;

function progressOf(record: JobRecord): JobProgress {
  switch (record.state) {
    case 'active':
      return { state: 'active', runningForMs: Math.max(0, record.now - (record.startedAt ?? record.now)) };
    case 'delayed':
      return {
        state: 'delayed',
        position: record.position ?? 1,
        readyInMs: Math.max(0, (record.readyAt ?? record.now) - record.now),
      };
    default:
      return { state: 'waiting', position: record.position ?? 1 };
  }
}

export function createChatQueue(options: ChatQueueOptions): ChatQueue {
  const { ledger, keys, metrics, tracker } = options;
  const fallback: EtaFallback = { jobMs: DEFAULT_JOB_MS, concurrency: options.concurrency };
  const queue = new Queue<ChatJobData>(CHAT_QUEUE_NAME, {
    connection: options.redis,
    prefix: bullPrefix(options.redisPrefix),
    defaultJobOptions: {
      attempts: options.attempts,
      // Delays come from the worker's backoffStrategy (retry-policy.ts).
      backoff: { type: 'upstream' },
      // Results must outlive the job: the seed's removeOnComplete: true made them unreadable.
      removeOnComplete: { age: options.resultTtlSeconds },
      removeOnFail: { age: options.resultTtlSeconds },
    },
  });
  // Without a listener BullMQ prints every reconnect failure to stderr; the tracker logs an outage once.
  queue.on('error', (error) => tracker.failed(error));

  /** Redis trouble on the request path: a 503 with Retry-After, logged once per outage. */
  async function guarded<T>(step: () => Promise<T>): Promise<T> {
    try {
      const value = await step();
      tracker.succeeded();
      return value;
    } catch (error) {
      if (error instanceof AppError) {
        throw error;
      }
      tracker.failed(error);
      throw serviceUnavailable('The queue is unavailable right now. Please try again shortly.');
    }
  }

  /** Retry-After for a full queue: about the time the line needs to move by a tenth. */
  function retryAfterFull(throughput: Throughput): number {
    const intervalMs = throughput.intervalMs ?? fallback.jobMs / Math.max(1, fallback.concurrency);
    const seconds = Math.ceil((intervalMs * Math.ceil(options.maxWaiting / 10)) / 1000);
    return Math.min(RETRY_AFTER_MAX_SECONDS, Math.max(1, seconds));
  }

  const add = (jobId: string, data: ChatJobData) => queue.add(CHAT_QUEUE_NAME, data, { jobId });

  /** Where an unfinished job stands, for the POST's answer and for polls. */
  function standing(record: JobRecord) {
    const progress = progressOf(record);
    return {
      state: progress.state,
      position: progress.state === 'active' ? 0 : progress.position,
      estimatedTime: estimateSeconds(progress, record.throughput, fallback),
    };
  }

  async function replay(input: EnqueueInput, stored: string, fingerprint: string): Promise<Enqueued | undefined> {
    const [jobId = '', storedFingerprint] = stored.split(' ');
    if (storedFingerprint !== fingerprint) {
      throw idempotencyKeyReused();
    }
    const record = await ledger.read(jobId);
    if (!record) {
      return undefined;
    }
    if (record.state === 'completed' || record.state === 'failed') {
      return { jobId, position: 0, estimatedTime: 0, replayed: true };
    }
    if (record.state === 'waiting') {
      // The first POST may have died between admission and BullMQ; adding an existing id is a no-op.
      await add(jobId, { request: input.request, requestId: input.requestId });
    }
    const { position, estimatedTime } = standing(record);
    return { jobId, position, estimatedTime, replayed: true };
  }

  async function enqueueOnce(input: EnqueueInput, owner: string): Promise<Enqueued | undefined> {
    const jobId = newJobId();
    const fingerprint = requestFingerprint(input.request);
    const idempotency = input.idempotencyKey
      ? {
          key: keys.idempotency(owner, idempotencySlot(input.idempotencyKey)),
          value: `${jobId} ${fingerprint}`,
          ttlSeconds: options.idempotencyTtlSeconds,
        }
      : undefined;
    const admission = await ledger.admit({
      jobId,
      owner,
      maxWaiting: options.maxWaiting,
      pendingTtlSeconds: PENDING_TTL_SECONDS,
      idempotency,
    });
    if (admission.kind === 'existing') {
      const replayed = await replay(input, admission.value, fingerprint);
      if (!replayed && idempotency) {
        // The earlier job's record expired: free the key and queue anew.
        await ledger.withdraw(undefined, { key: idempotency.key, value: admission.value });
      }
      return replayed;
    }
    if (admission.kind === 'full') {
      metrics.queueRejected.inc();
      throw queueFull(retryAfterFull(admission.throughput));
    }
    try {
      await add(jobId, { request: input.request, requestId: input.requestId });
    } catch (error) {
      await ledger.withdraw(jobId, idempotency).catch(() => undefined);
      throw error;
    }
    return {
      jobId,
      position: admission.position,
      estimatedTime: estimateSeconds(
        { state: 'waiting', position: admission.position },
        admission.throughput,
        fallback,
      ),
      replayed: false,
    };
  }

  return {
    queue,

    enqueue(input) {
      const owner = hashCaller(input.callerId);
      return guarded(async () => {
        // A second round only when the Idempotency-Key pointed at an expired job and was just freed.
        const enqueued = (await enqueueOnce(input, owner)) ?? (await enqueueOnce(input, owner));
        if (!enqueued) {
          throw serviceUnavailable('The queue is busy right now. Please try again shortly.', 1);
        }
        return enqueued;
      });
    },

    async status(callerId, jobId) {
      const record = await guarded(() => ledger.read(jobId));
      if (!record || record.owner !== hashCaller(callerId)) {
        return undefined;
      }
      if (record.state === 'completed' && record.result) {
        return { status: 'completed', result: record.result };
      }
      if (record.state === 'failed' && record.error) {
        return { status: 'failed', error: record.error };
      }
      return { status: 'processing', ...standing(record) };
    },

    async counts() {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed');
      return { waiting: counts.waiting ?? 0, active: counts.active ?? 0, delayed: counts.delayed ?? 0 };
    },

    close() {
      return queue.close();
    },
  };
}
