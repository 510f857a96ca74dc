import type { Redis } from 'ioredis';
import type { ChatAnswer } from '../chat/chat-service.js';
import { movingAverage, type Throughput } from './eta.js';
import {
  admitScript,
  dropStaleScript,
  finishScript,
  forgetScript,
  PLACE_UNIT,
  parkScript,
  startScript,
  withdrawScript,
} from './ledger-scripts.js';
import type { QueueKeys } from './queue-keys.js';

/**
 * The public side of every queued job, beside BullMQ's own records: who owns
 * it, where it stands, its answer or error, its place in line, and the
 * cluster's measured pace. A poll reads it in one pipelined round trip,
 * without touching the BullMQ job (which carries the whole conversation) or
 * scanning BullMQ's wait list.
 */

export type JobState = 'waiting' | 'active' | 'delayed' | 'completed' | 'failed';

export interface PublicError {
  code: string;
  message: string;
}

export interface JobRecord {
  /** Hash of the caller who queued it. */
  owner: string;
  state: JobState;
  /** BullMQ priority it was queued with (1 = first of its owner's jobs in line). */
  priority: number;
  result: ChatAnswer | undefined;
  error: PublicError | undefined;
  /** 1-based place in line; undefined once started. */
  position: number | undefined;
  enqueuedAt: number | undefined;
  startedAt: number | undefined;
  readyAt: number | undefined;
  /** Redis time of the read, in ms (the clock every timestamp above uses). */
  now: number;
  throughput: Throughput;
}

export type Admission =
  | { kind: 'admitted'; position: number; priority: number; throughput: Throughput }
  | { kind: 'existing'; value: string }
  | { kind: 'full'; throughput: Throughput };

export interface AdmitRequest {
  jobId: string;
  owner: string;
  maxWaiting: number;
  pendingTtlSeconds: number;
  /** How long a finished job's result is kept (and BullMQ's job, at least). */
  resultTtlSeconds: number;
  /** The caller's Idempotency-Key slot and what to store in it (job id and request fingerprint). */
  idempotency?: { key: string; value: string; ttlSeconds: number };
}

/** What a worker learns when it starts an attempt. */
export type StartOutcome =
  | { kind: 'first'; waitedMs: number }
  | { kind: 'restart' }
  | { kind: 'finished' }
  | { kind: 'gone' };

export type FinalOutcome = { state: 'completed'; result: ChatAnswer } | { state: 'failed'; error: PublicError };

/**
 * Where a job goes back in line, as BullMQ puts it: delayed (quota, retry
 * backoff), handed back at shutdown, or stalled (recovered from a dead worker).
 */
export type ParkReason = 'delayed' | 'handed_back' | 'stalled';

/** What a write to a record found: done, a record already finished (kept as is), or no record (expired or forgotten). */
export type RecordWrite = 'written' | 'finished' | 'gone';

const recordWrite = (code: unknown): RecordWrite =>
  Number(code) === 1 ? 'written' : Number(code) === 0 ? 'finished' : 'gone';

export interface JobLedger {
  admit(request: AdmitRequest): Promise<Admission>;
  /** Undoes an admission (jobId) and/or frees an Idempotency-Key slot that still holds `value`. */
  withdraw(jobId: string | undefined, owner: string, idempotency?: { key: string; value: string }): Promise<void>;
  read(jobId: string): Promise<JobRecord | undefined>;
  start(jobId: string): Promise<StartOutcome>;
  park(jobId: string, reason: ParkReason, delayMs: number, attemptMs?: number): Promise<RecordWrite>;
  finish(jobId: string, outcome: FinalOutcome, ttlSeconds: number, attemptMs?: number): Promise<RecordWrite>;
  /** Ids of the owner's jobs that may still be held (records or BullMQ jobs); some may be gone. */
  ownedIds(owner: string): Promise<string[]>;
  /** Drops an id whose record and BullMQ job are both gone from the owner's index. */
  unlist(owner: string, jobId: string): Promise<void>;
  /** Deletes the owner's records, line entries, Idempotency-Key slots and own keys; returns their job ids. */
  forget(owner: string): Promise<string[]>;
  /** The oldest entries of the line, for the reconciler. */
  lineHead(count: number): Promise<{ jobId: string; score: string }[]>;
  dropStale(jobId: string, score: string): Promise<void>;
  waitingCount(): Promise<number>;
}

const JOB_STATES: readonly string[] = ['waiting', 'active', 'delayed', 'completed', 'failed'];

function parseJson<T>(raw: string | null): T | undefined {
  return raw === null ? undefined : (JSON.parse(raw) as T);
}

const optionalNumber = (raw: string | null) => (raw === null ? undefined : Number(raw));

/** The stats hash fields iS, iW, dS, dW (see ledger-scripts.ts) as averages. */
function toThroughput(stats: readonly (string | null | undefined)[]): Throughput {
  const [iS = null, iW = null, dS = null, dW = null] = stats;
  return { intervalMs: movingAverage(iS, iW), durationMs: movingAverage(dS, dW) };
}

/** A pipeline reply: [error, value] per command; one failure fails the read. */
function replies(results: [Error | null, unknown][] | null): unknown[] {
  if (results === null) {
    throw new Error('redis pipeline was discarded');
  }
  return results.map(([error, value]) => {
    if (error) {
      throw error;
    }
    return value;
  });
}

/** The connection and key names every ledger step uses. */
interface LedgerContext {
  redis: Redis;
  keys: QueueKeys;
}

export function createJobLedger(redis: Redis, keys: QueueKeys): JobLedger {
  const context: LedgerContext = { redis, keys };
  return {
    admit: (request) => admit(context, request),
    withdraw: (jobId, owner, idempotency) => withdraw(context, jobId, owner, idempotency),
    read: (jobId) => read(context, jobId),
    start: (jobId) => start(context, jobId),
    park: (jobId, reason, delayMs, attemptMs) => park(context, jobId, reason, delayMs, attemptMs),
    finish: (jobId, outcome, ttlSeconds, attemptMs) => finish(context, jobId, outcome, ttlSeconds, attemptMs),
    lineHead: (count) => lineHead(context, count),
    dropStale: (jobId, score) => dropStale(context, jobId, score),
    ownedIds(owner) {
      return redis.zrange(keys.owner(owner, 'jobs'), '0', '-1');
    },
    async unlist(owner, jobId) {
      await redis.zrem(keys.owner(owner, 'jobs'), jobId);
    },
    forget: (owner) => forget(context, owner),
    waitingCount() {
      return redis.zcard(keys.line);
    },
  };
}

async function admit({ redis, keys }: LedgerContext, request: AdmitRequest): Promise<Admission> {
  const idempotency = request.idempotency;
  const reply = (await admitScript.run(
    redis,
    [
      keys.line,
      keys.seq,
      keys.job(request.jobId),
      // No key: a stand-in of the same cluster slot (an empty name would hash elsewhere); the script reads ARGV.
      idempotency?.key ?? keys.line,
      keys.stats,
      keys.owner(request.owner, 'line'),
      keys.owner(request.owner, 'jobs'),
      keys.owner(request.owner, 'idem'),
    ],
    [
      request.jobId,
      request.owner,
      request.maxWaiting,
      request.pendingTtlSeconds,
      idempotency?.ttlSeconds ?? 0,
      idempotency?.value ?? '',
      // BullMQ drops finished jobs lazily, past an age of the result TTL: the index keeps them that long more.
      request.resultTtlSeconds,
    ],
  )) as [string, string | (string | null)[], number?, number?];
  const [kind, detail, rank, priority] = reply;
  if (kind === 'existing') {
    return { kind, value: String(detail) };
  }
  const throughput = toThroughput(Array.isArray(detail) ? detail : []);
  if (kind === 'full') {
    return { kind, throughput };
  }
  return { kind: 'admitted', position: Number(rank) + 1, priority: Number(priority), throughput };
}

async function withdraw(
  { redis, keys }: LedgerContext,
  jobId: string | undefined,
  owner: string,
  idempotency?: { key: string; value: string },
): Promise<void> {
  await withdrawScript.run(
    redis,
    [
      keys.line,
      // Stand-ins of the same cluster slot when absent; the script tells by the empty ARGV.
      jobId === undefined ? keys.line : keys.job(jobId),
      idempotency?.key ?? keys.line,
      keys.owner(owner, 'line'),
      keys.owner(owner, 'jobs'),
      keys.owner(owner, 'idem'),
    ],
    [jobId ?? '', idempotency?.value ?? ''],
  );
}

async function read({ redis, keys }: LedgerContext, jobId: string): Promise<JobRecord | undefined> {
  const [fields, rank, stats, time] = replies(
    await redis
      .pipeline()
      .hmget(keys.job(jobId), 'owner', 'state', 'result', 'error', 'startedAt', 'readyAt', 'enqueuedAt', 'priority')
      .zrank(keys.line, jobId)
      .hmget(keys.stats, 'iS', 'iW', 'dS', 'dW')
      .time()
      .exec(),
  ) as [(string | null)[], number | null, (string | null)[], [string, string]];
  const [owner, state, result, error, startedAt, readyAt, enqueuedAt, priority] = fields;
  if (!owner || !state || !JOB_STATES.includes(state)) {
    return undefined;
  }
  // Records from before priorities were all first in their owner's line.
  const jobPriority = optionalNumber(priority ?? null) ?? 1;
  const ready = optionalNumber(readyAt ?? null);
  const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
  let position = rank === null ? undefined : rank + 1;
  if (state === 'delayed' && position !== undefined && ready !== undefined && ready <= now) {
    // Due, but BullMQ promotes it only at its next fetch: where it will enter then.
    position = 1 + (await redis.zcount(keys.line, '-inf', `(${jobPriority * PLACE_UNIT + now}`));
  }
  return {
    owner,
    state: state as JobState,
    priority: jobPriority,
    result: parseJson<ChatAnswer>(result ?? null),
    error: parseJson<PublicError>(error ?? null),
    position,
    enqueuedAt: optionalNumber(enqueuedAt ?? null),
    startedAt: optionalNumber(startedAt ?? null),
    readyAt: ready,
    now,
    throughput: toThroughput(stats),
  };
}

async function start({ redis, keys }: LedgerContext, jobId: string): Promise<StartOutcome> {
  const code = Number(
    await startScript.run(redis, [keys.line, keys.job(jobId), keys.seq], [jobId, keys.ownerPrefix, keys.jobPrefix]),
  );
  if (code === -1) {
    return { kind: 'gone' };
  }
  if (code === -2) {
    return { kind: 'restart' };
  }
  if (code === -3) {
    return { kind: 'finished' };
  }
  return { kind: 'first', waitedMs: code };
}

async function park(
  { redis, keys }: LedgerContext,
  jobId: string,
  reason: ParkReason,
  delayMs: number,
  attemptMs?: number,
): Promise<RecordWrite> {
  return recordWrite(
    await parkScript.run(
      redis,
      [keys.line, keys.job(jobId), keys.stats],
      [
        jobId,
        reason,
        Math.max(0, Math.round(delayMs)),
        attemptMs === undefined ? '' : Math.round(attemptMs),
        keys.ownerPrefix,
      ],
    ),
  );
}

async function finish(
  { redis, keys }: LedgerContext,
  jobId: string,
  outcome: FinalOutcome,
  ttlSeconds: number,
  attemptMs?: number,
): Promise<RecordWrite> {
  const [field, value] =
    outcome.state === 'completed' ? ['result', outcome.result] : (['error', outcome.error] as const);
  return recordWrite(
    await finishScript.run(
      redis,
      [keys.line, keys.job(jobId), keys.stats],
      [
        jobId,
        outcome.state,
        field,
        JSON.stringify(value),
        ttlSeconds,
        attemptMs === undefined ? '' : Math.round(attemptMs),
        keys.ownerPrefix,
        // As at admission: BullMQ keeps the finished job about one result TTL more.
        ttlSeconds,
      ],
    ),
  );
}

async function lineHead({ redis, keys }: LedgerContext, count: number): Promise<{ jobId: string; score: string }[]> {
  const flat = await redis.zrange(keys.line, '0', String(count - 1), 'WITHSCORES');
  const entries: { jobId: string; score: string }[] = [];
  for (let index = 0; index + 1 < flat.length; index += 2) {
    entries.push({ jobId: flat[index] as string, score: flat[index + 1] as string });
  }
  return entries;
}

async function dropStale({ redis, keys }: LedgerContext, jobId: string, score: string): Promise<void> {
  await dropStaleScript.run(redis, [keys.line, keys.job(jobId)], [jobId, score, keys.ownerPrefix]);
}

async function forget({ redis, keys }: LedgerContext, owner: string): Promise<string[]> {
  const ids = await forgetScript.run(
    redis,
    [keys.line, keys.owner(owner, 'line'), keys.owner(owner, 'jobs'), keys.owner(owner, 'idem')],
    [keys.jobPrefix],
  );
  return (ids as string[]).map(String);
}
