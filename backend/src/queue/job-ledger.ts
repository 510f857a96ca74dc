import type { Redis } from 'ioredis';
import type { ChatAnswer } from '../chat/chat-service.js';
import { movingAverage, type Throughput } from './eta.js';
import {
  admitScript,
  dropStaleScript,
  finishScript,
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
  result: ChatAnswer | undefined;
  error: PublicError | undefined;
  /** 1-based place in line; undefined once started. */
  position: number | undefined;
  startedAt: number | undefined;
  readyAt: number | undefined;
  /** Redis time of the read, in ms (the clock every timestamp above uses). */
  now: number;
  throughput: Throughput;
}

export type Admission =
  | { kind: 'admitted'; position: number; throughput: Throughput }
  | { kind: 'existing'; value: string }
  | { kind: 'full'; throughput: Throughput };

export interface AdmitRequest {
  jobId: string;
  owner: string;
  maxWaiting: number;
  pendingTtlSeconds: number;
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

export interface JobLedger {
  admit(request: AdmitRequest): Promise<Admission>;
  /** Undoes an admission (jobId) and/or frees an Idempotency-Key slot that still holds `value`. */
  withdraw(jobId: string | undefined, idempotency?: { key: string; value: string }): Promise<void>;
  read(jobId: string): Promise<JobRecord | undefined>;
  start(jobId: string): Promise<StartOutcome>;
  park(jobId: string, state: 'waiting' | 'delayed', delayMs: number, attemptMs?: number): Promise<void>;
  finish(jobId: string, outcome: FinalOutcome, ttlSeconds: number, attemptMs?: number): Promise<void>;
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

export function createJobLedger(redis: Redis, keys: QueueKeys): JobLedger {
  return {
    async admit(request) {
      const idempotency = request.idempotency;
      const reply = (await admitScript.run(
        redis,
        [keys.line, keys.seq, keys.job(request.jobId), idempotency?.key ?? '', keys.stats],
        [
          request.jobId,
          request.owner,
          request.maxWaiting,
          request.pendingTtlSeconds,
          idempotency?.ttlSeconds ?? 0,
          idempotency?.value ?? '',
        ],
      )) as [string, string | (string | null)[], number?];
      const [kind, detail, rank] = reply;
      if (kind === 'existing') {
        return { kind, value: String(detail) };
      }
      const throughput = toThroughput(Array.isArray(detail) ? detail : []);
      if (kind === 'full') {
        return { kind, throughput };
      }
      return { kind: 'admitted', position: Number(rank) + 1, throughput };
    },

    async withdraw(jobId, idempotency) {
      await withdrawScript.run(
        redis,
        [keys.line, jobId === undefined ? '' : keys.job(jobId), idempotency?.key ?? ''],
        [jobId ?? '', idempotency?.value ?? ''],
      );
    },

    async read(jobId) {
      const [fields, rank, stats, time] = replies(
        await redis
          .pipeline()
          .hmget(keys.job(jobId), 'owner', 'state', 'result', 'error', 'startedAt', 'readyAt')
          .zrank(keys.line, jobId)
          .hmget(keys.stats, 'iS', 'iW', 'dS', 'dW')
          .time()
          .exec(),
      ) as [(string | null)[], number | null, (string | null)[], [string, string]];
      const [owner, state, result, error, startedAt, readyAt] = fields;
      if (!owner || !state || !JOB_STATES.includes(state)) {
        return undefined;
      }
      return {
        owner,
        state: state as JobState,
        result: parseJson<ChatAnswer>(result ?? null),
        error: parseJson<PublicError>(error ?? null),
        position: rank === null ? undefined : rank + 1,
        startedAt: optionalNumber(startedAt ?? null),
        readyAt: optionalNumber(readyAt ?? null),
        now: Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000),
        throughput: toThroughput(stats),
      };
    },

    async start(jobId) {
      const code = Number(await startScript.run(redis, [keys.line, keys.job(jobId)], [jobId]));
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
    },

    async park(jobId, state, delayMs, attemptMs) {
      await parkScript.run(
        redis,
        [keys.line, keys.seq, keys.job(jobId), keys.stats],
        [jobId, state, Math.max(0, Math.round(delayMs)), attemptMs === undefined ? '' : Math.round(attemptMs)],
      );
    },

    async finish(jobId, outcome, ttlSeconds, attemptMs) {
      const [field, value] =
        outcome.state === 'completed' ? ['result', outcome.result] : (['error', outcome.error] as const);
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
        ],
      );
    },

    async lineHead(count) {
      const flat = await redis.zrange(keys.line, '0', String(count - 1), 'WITHSCORES');
      const entries: { jobId: string; score: string }[] = [];
      for (let index = 0; index + 1 < flat.length; index += 2) {
        entries.push({ jobId: flat[index] as string, score: flat[index + 1] as string });
      }
      return entries;
    },

    async dropStale(jobId, score) {
      await dropStaleScript.run(redis, [keys.line], [jobId, score]);
    },

    waitingCount() {
      return redis.zcard(keys.line);
    },
  };
}
