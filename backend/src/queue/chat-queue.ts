import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ChatRequest } from '../chat/chat-request.js';
import type { ChatAnswer } from '../chat/chat-service.js';
import { AppError, idempotencyKeyReused, queueFull, serviceUnavailable } from '../errors.js';
import type { CallerKeys, CallerRef } from '../redis/caller-key.js';
import { fromRedis } from '../redis/redis-unavailable.js';
import type { ReplicaAck } from '../redis/replica-ack.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Metrics } from '../telemetry/metrics.js';
import { DEFAULT_JOB_MS, type EtaFallback, estimateSeconds, type JobProgress, type Throughput } from './eta.js';
import { idempotencySlot, requestFingerprint } from './idempotency.js';
import type { JobLedger, JobRecord, JobState, PublicError } from './job-ledger.js';
import { bullPrefix, CHAT_QUEUE_NAME, newJobId, type QueueKeys } from './queue-keys.js';

export interface ChatJobData {
  request: ChatRequest;
  /** Who asked, by Redis name only: the raw caller id never enters BullMQ. */
  caller: CallerRef;
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

/** One job as its owner may export it. */
export interface OwnedJob {
  jobId: string;
  state: JobState;
  /** When it was queued, ISO 8601. */
  createdAt?: string;
  /** What the caller sent; absent once BullMQ no longer holds it (or never got it: a POST that died midway). */
  request?: ChatRequest;
  result?: ChatAnswer;
  error?: PublicError;
}

export interface ChatQueue {
  readonly queue: Queue<ChatJobData>;
  enqueue(input: EnqueueInput): Promise<Enqueued>;
  /**
   * A job that is finished as it is created (the safety answer to a crisis
   * message): never in BullMQ or the line, owned, polled, exported and
   * deleted like any other.
   */
  completeNow(callerId: string, result: ChatAnswer): Promise<Enqueued>;
  /** The job as its owner sees it; undefined for an unknown job or anyone else's. */
  status(callerId: string, jobId: string): Promise<JobStatus | undefined>;
  counts(): Promise<{ waiting: number; active: number; delayed: number }>;
  /** Every job of the caller still held, with what they sent and what they got. */
  owned(callerId: string): Promise<OwnedJob[]>;
  /**
   * Deletes every job of the caller: BullMQ's job, its record and place in line,
   * their Idempotency-Key slots and the caller's own keys. A job running right
   * now is removed by its worker as it ends (it finds its record gone).
   */
  forget(callerId: string): Promise<void>;
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
  /** A job's owner is stored as the caller's Redis name, never its id. */
  callerKeys: CallerKeys;
  /**
   * Waits for a replica to hold an admitted job (on the `redis` connection, which made the
   * writes) before the 202, so a failover cannot lose it. Absent: the 202 follows the write.
   */
  replicaAck?: ReplicaAck;
}

/** A record lives this long while its job waits; once finished, QUEUE_RESULT_TTL_SECONDS. */
const PENDING_TTL_SECONDS = 86_400;
const RETRY_AFTER_MAX_SECONDS = 60;

/** A BullMQ state in our terms, for a job whose record already expired; undefined when BullMQ has no such job. */
function bullState(state: string): JobState | undefined {
  switch (state) {
    case 'active':
    case 'delayed':
    case 'completed':
    case 'failed':
      return state;
    case 'unknown':
      return undefined;
    default:
      // waiting, prioritized, waiting-children
      return 'waiting';
  }
}

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

/** What the steps of one chat queue share. */
interface QueueContext {
  options: ChatQueueOptions;
  queue: Queue<ChatJobData>;
  /** Estimates until the cluster has measured its pace. */
  fallback: EtaFallback;
}

export function createChatQueue(options: ChatQueueOptions): ChatQueue {
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
  queue.on('error', (error) => options.tracker.failed(error));
  const context: QueueContext = {
    options,
    queue,
    fallback: { jobMs: DEFAULT_JOB_MS, concurrency: options.concurrency },
  };
  return {
    queue,
    enqueue: (input) => enqueue(context, input),
    completeNow: (callerId, result) => completeNow(context, callerId, result),
    status: (callerId, jobId) => status(context, callerId, jobId),
    counts: () => counts(context),
    owned: (callerId) => owned(context, callerId),
    forget: (callerId) => forget(context, callerId),
    close: () => queue.close(),
  };
}

/** Redis trouble on the request path: a 503 with Retry-After, logged once per outage. */
async function guarded<T>(context: QueueContext, step: () => Promise<T>): Promise<T> {
  const { tracker } = context.options;
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
function retryAfterFull(context: QueueContext, throughput: Throughput): number {
  const { fallback, options } = context;
  const intervalMs = throughput.intervalMs ?? fallback.jobMs / Math.max(1, fallback.concurrency);
  const seconds = Math.ceil((intervalMs * Math.ceil(options.maxWaiting / 10)) / 1000);
  return Math.min(RETRY_AFTER_MAX_SECONDS, Math.max(1, seconds));
}

/**
 * Never priority 0: BullMQ runs unprioritized jobs before every prioritized
 * one. The ledger chose the priority and placed the job in line to match.
 */
const add = (context: QueueContext, jobId: string, data: ChatJobData, priority: number) =>
  context.queue.add(CHAT_QUEUE_NAME, data, { jobId, priority });

const jobData = (input: EnqueueInput, owner: string): ChatJobData => ({
  request: input.request,
  caller: { kind: input.callerId.startsWith('user:') ? 'user' : 'ip', key: owner },
  requestId: input.requestId,
});

/** Where an unfinished job stands, for the POST's answer and for polls. */
function standing(context: QueueContext, record: JobRecord) {
  const progress = progressOf(record);
  return {
    state: progress.state,
    position: progress.state === 'active' ? 0 : progress.position,
    estimatedTime: estimateSeconds(progress, record.throughput, context.fallback),
  };
}

function enqueue(context: QueueContext, input: EnqueueInput): Promise<Enqueued> {
  const owner = context.options.callerKeys.hash(input.callerId);
  return guarded(context, async () => {
    // A second round only when the Idempotency-Key pointed at an expired job and was just freed.
    const enqueued = (await enqueueOnce(context, input, owner)) ?? (await enqueueOnce(context, input, owner));
    if (!enqueued) {
      throw serviceUnavailable('The queue is busy right now. Please try again shortly.', 1);
    }
    return enqueued;
  });
}

async function enqueueOnce(context: QueueContext, input: EnqueueInput, owner: string): Promise<Enqueued | undefined> {
  const { options } = context;
  const { ledger, keys, metrics } = options;
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
    resultTtlSeconds: options.resultTtlSeconds,
    idempotency,
  });
  if (admission.kind === 'existing') {
    const replayed = await replay(context, input, owner, admission.value, fingerprint);
    if (!replayed && idempotency) {
      // The earlier job's record expired: free the key and queue anew.
      await ledger.withdraw(undefined, owner, { key: idempotency.key, value: admission.value });
    }
    return replayed;
  }
  if (admission.kind === 'full') {
    metrics.queueRejected.inc();
    throw queueFull(retryAfterFull(context, admission.throughput));
  }
  try {
    await add(context, jobId, jobData(input, owner), admission.priority);
  } catch (error) {
    await ledger.withdraw(jobId, owner, idempotency).catch(() => undefined);
    throw error;
  }
  // A failure here is a 503 although the job may stay queued: a retry with the same Idempotency-Key finds it.
  await options.replicaAck?.confirm();
  const position = admission.position;
  const estimatedTime = estimateSeconds({ state: 'waiting', position }, admission.throughput, context.fallback);
  return { jobId, position, estimatedTime, replayed: false };
}

async function replay(
  context: QueueContext,
  input: EnqueueInput,
  owner: string,
  stored: string,
  fingerprint: string,
): Promise<Enqueued | undefined> {
  const [jobId = '', storedFingerprint] = stored.split(' ');
  if (storedFingerprint !== fingerprint) {
    throw idempotencyKeyReused();
  }
  const record = await context.options.ledger.read(jobId);
  if (!record) {
    return undefined;
  }
  if (record.state === 'completed' || record.state === 'failed') {
    return { jobId, position: 0, estimatedTime: 0, replayed: true };
  }
  if (record.state === 'waiting') {
    // The first POST may have died between admission and BullMQ; adding an existing id is a no-op.
    await add(context, jobId, jobData(input, owner), record.priority);
  }
  // The first POST may have died before its replica acknowledged the job.
  await context.options.replicaAck?.confirm();
  const { position, estimatedTime } = standing(context, record);
  return { jobId, position, estimatedTime, replayed: true };
}

function completeNow(context: QueueContext, callerId: string, result: ChatAnswer): Promise<Enqueued> {
  const { options } = context;
  const { keys } = options;
  const owner = options.callerKeys.hash(callerId);
  const jobId = newJobId();
  const ttlSeconds = options.resultTtlSeconds;
  // The index keeps an id one result TTL past its record, as finish does for BullMQ's lazy removal.
  const indexMs = 2 * ttlSeconds * 1000;
  // This instance's clock, where the ledger's scripts use Redis TIME: a skew only shifts when the id leaves the index.
  const now = Date.now();
  const index = keys.owner(owner, 'jobs');
  return guarded(context, async () => {
    const results = await options.redis
      .multi()
      .hset(keys.job(jobId), {
        owner,
        state: 'completed',
        priority: 1,
        enqueuedAt: now,
        finishedAt: now,
        result: JSON.stringify(result),
      })
      .expire(keys.job(jobId), ttlSeconds)
      .zadd(index, now + indexMs, jobId)
      // The index lives as long as its last member: set a TTL on a new key, lengthen an older one.
      .pexpire(index, indexMs, 'NX')
      .pexpire(index, indexMs, 'GT')
      .exec();
    const failure = results?.find(([error]) => error)?.[0];
    if (!results || failure) {
      throw failure ?? new Error('redis transaction was discarded');
    }
    return { jobId, position: 0, estimatedTime: 0, replayed: false };
  });
}

async function status(context: QueueContext, callerId: string, jobId: string): Promise<JobStatus | undefined> {
  const record = await guarded(context, () => context.options.ledger.read(jobId));
  if (!record || record.owner !== context.options.callerKeys.hash(callerId)) {
    return undefined;
  }
  if (record.state === 'completed' && record.result) {
    return { status: 'completed', result: record.result };
  }
  if (record.state === 'failed' && record.error) {
    return { status: 'failed', error: record.error };
  }
  return { status: 'processing', ...standing(context, record) };
}

async function counts(context: QueueContext): Promise<{ waiting: number; active: number; delayed: number }> {
  // Every job has a priority, so BullMQ counts the waiting ones as "prioritized".
  const counted = await fromRedis(() => context.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed'));
  return {
    waiting: (counted.waiting ?? 0) + (counted.prioritized ?? 0),
    active: counted.active ?? 0,
    delayed: counted.delayed ?? 0,
  };
}

function owned(context: QueueContext, callerId: string): Promise<OwnedJob[]> {
  const owner = context.options.callerKeys.hash(callerId);
  return guarded(context, async () => {
    const ids = await context.options.ledger.ownedIds(owner);
    const jobs = await Promise.all(ids.map((jobId) => ownedJob(context, owner, jobId)));
    return jobs.filter((job): job is OwnedJob => job !== undefined);
  });
}

/** One id of the owner's index as an export entry; an id whose record and BullMQ job are both gone leaves the index. */
async function ownedJob(context: QueueContext, owner: string, jobId: string): Promise<OwnedJob | undefined> {
  const { ledger } = context.options;
  const [record, job] = await Promise.all([ledger.read(jobId), context.queue.getJob(jobId)]);
  const data = job?.data;
  if ((record && record.owner !== owner) || (data?.caller && data.caller.key !== owner)) {
    return undefined;
  }
  const state = record?.state ?? (job ? bullState(await job.getState()) : undefined);
  if (!state) {
    await ledger.unlist(owner, jobId);
    return undefined;
  }
  const enqueuedAt = record?.enqueuedAt ?? job?.timestamp;
  return {
    jobId,
    state,
    createdAt: enqueuedAt === undefined ? undefined : new Date(enqueuedAt).toISOString(),
    request: data?.request,
    result: record?.result,
    error: record?.error,
  };
}

function forget(context: QueueContext, callerId: string): Promise<void> {
  const owner = context.options.callerKeys.hash(callerId);
  return guarded(context, async () => {
    // The ledger first: a BullMQ job left behind (locked, or added by a POST in flight) then
    // finds no record when it runs, and its worker removes it.
    const jobIds = await context.options.ledger.forget(owner);
    await Promise.all(jobIds.map((jobId) => context.queue.remove(jobId)));
  });
}
