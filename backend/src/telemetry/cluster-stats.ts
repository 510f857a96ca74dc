import type { Redis } from 'ioredis';
import type { CallerKeys } from '../redis/caller-key.js';
import { fromRedis, RedisUnavailableError } from '../redis/redis-unavailable.js';
import type { DegradationTracker } from './degradation.js';
import { currentSecond, FIELD, LATENCY_BOUNDS_MS, windowKeys } from './stats-window.js';
import { createStatsWriter, FLUSH_INTERVAL_MS, type RequestSample, type StatsWriter } from './stats-writer.js';

export type { RequestSample };

/** Sums over the last minute, from every instance. */
export interface WindowTotals {
  requests: number;
  clientErrors: number;
  serverErrors: number;
  latencySumMs: number;
  /** Counts per LATENCY_BOUNDS_MS bucket (not cumulative), plus one overflow bucket. */
  latencyBuckets: number[];
  cacheHits: number;
  cacheMisses: number;
  upstream: Record<string, { calls: number; tokens: number }>;
}

export interface ClusterSnapshot {
  activeUsers: number;
  totals: WindowTotals;
}

/**
 * Cluster-wide request figures and active users, kept in Redis so that every
 * instance reads the same numbers. Recording only adds to an in-memory batch;
 * the batch goes to Redis in one pipeline per flush interval, off every
 * request's path, so the cost per request does not grow with traffic. A Redis
 * failure loses that batch, is counted and logged once. Reads throw, so the
 * caller can refuse honestly.
 */
export interface ClusterStats extends StatsWriter {
  activeUsers(): Promise<number>;
  /** Drops a caller from the active users (account deletion); throws when Redis fails. */
  forgetCaller(callerId: string): Promise<void>;
  /** The window as read at most SNAPSHOT_MAX_AGE_MS ago. */
  lastMinute(): Promise<ClusterSnapshot>;
}

export interface ClusterStatsOptions {
  redis: Redis;
  prefix: string;
  /** A caller counts as active this long after its last request (the seed's 5 minutes). */
  activeUserWindowSeconds: number;
  tracker: DegradationTracker;
  /** Active users are counted by their Redis name, never their id. */
  callerKeys: CallerKeys;
}

/** Past every instance's next flush (with room for a slow one) after an account is deleted. */
const FORGET_SWEEP_MS = 4 * FLUSH_INTERVAL_MS;
/**
 * A window read (61 commands, a few ms of parsing) is shared by the pages asked
 * for within this time, so polling the stats pages cannot multiply its cost.
 */
const SNAPSHOT_MAX_AGE_MS = 1000;

function emptyTotals(): WindowTotals {
  return {
    requests: 0,
    clientErrors: 0,
    serverErrors: 0,
    latencySumMs: 0,
    latencyBuckets: new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0),
    cacheHits: 0,
    cacheMisses: 0,
    upstream: {},
  };
}

function sumBuckets(buckets: readonly Record<string, string>[]): WindowTotals {
  const totals = emptyTotals();
  for (const bucket of buckets) {
    addBucket(totals, bucket);
  }
  return totals;
}

function addBucket(totals: WindowTotals, bucket: Record<string, string>): void {
  for (const [field, raw] of Object.entries(bucket)) {
    const value = Number(raw);
    if (field === FIELD.requests) {
      totals.requests += value;
    } else if (field === FIELD.clientErrors) {
      totals.clientErrors += value;
    } else if (field === FIELD.serverErrors) {
      totals.serverErrors += value;
    } else if (field === FIELD.latencyMicros) {
      totals.latencySumMs += value / 1000;
    } else if (field === FIELD.cacheHits) {
      totals.cacheHits += value;
    } else if (field === FIELD.cacheMisses) {
      totals.cacheMisses += value;
    } else if (field.startsWith('l')) {
      const index = Number(field.slice(1));
      if (index < totals.latencyBuckets.length) {
        totals.latencyBuckets[index] = (totals.latencyBuckets[index] ?? 0) + value;
      }
    } else if (field.startsWith('uc:') || field.startsWith('ut:')) {
      const provider = field.slice(3);
      const entry = totals.upstream[provider] ?? { calls: 0, tokens: 0 };
      totals.upstream[provider] = entry;
      if (field.startsWith('uc:')) {
        entry.calls += value;
      } else {
        entry.tokens += value;
      }
    }
  }
}

export function createClusterStats(options: ClusterStatsOptions): ClusterStats {
  const { redis, prefix, tracker } = options;
  // In the window keys' cluster slot ({stats}): the flush pipeline writes both.
  const activeKey = `${prefix}{stats}:active-users`;
  const activeWindowMs = options.activeUserWindowSeconds * 1000;
  const writer = createStatsWriter({ ...options, activeKey });
  /** Writes this instance's pending samples first, so the read sees them. */
  const read = async (pipeline: ReturnType<Redis['pipeline']>) => {
    await writer.flush();
    return readPipeline(pipeline, tracker);
  };
  return {
    ...writer,
    async activeUsers() {
      const [count] = await read(redis.pipeline().zcount(activeKey, Date.now() - activeWindowMs, '+inf'));
      return Number(count);
    },
    forgetCaller: async (callerId) => {
      // Awaited: the flush script may need a second send (NOSCRIPT on a fresh server), which could land after.
      await writer.flush();
      await forgetMember(redis, activeKey, options.callerKeys.hash(callerId), tracker);
    },
    lastMinute: sharedSnapshot(async (nowMs) => {
      const pipeline = redis.pipeline().zcount(activeKey, nowMs - activeWindowMs, '+inf');
      for (const key of windowKeys(prefix, currentSecond(nowMs))) {
        pipeline.hgetall(key);
      }
      const [count, ...buckets] = await read(pipeline);
      return { activeUsers: Number(count), totals: sumBuckets(buckets as Record<string, string>[]) };
    }),
  };
}

/**
 * This instance's pending samples went first, on the same connection, so none
 * of them re-adds the caller. Other instances may still hold a sample of
 * theirs for up to one flush interval: a second removal after that sweeps it.
 */
async function forgetMember(redis: Redis, activeKey: string, member: string, tracker: DegradationTracker) {
  await redis.zrem(activeKey, member);
  setTimeout(() => {
    redis.zrem(activeKey, member).catch((error: unknown) => tracker.failed(error));
  }, FORGET_SWEEP_MS).unref();
}

/** The replies of a pipeline; throws (a RedisUnavailableError) when any command failed. */
async function readPipeline(pipeline: ReturnType<Redis['pipeline']>, tracker: DegradationTracker): Promise<unknown[]> {
  try {
    const values = ((await fromRedis(() => pipeline.exec())) ?? []).map(([error, value]) => {
      if (error) {
        throw new RedisUnavailableError(error);
      }
      return value;
    });
    tracker.succeeded();
    return values;
  } catch (error) {
    tracker.failed(error);
    throw error;
  }
}

/** One read shared by the callers within SNAPSHOT_MAX_AGE_MS. */
function sharedSnapshot(load: (nowMs: number) => Promise<ClusterSnapshot>): () => Promise<ClusterSnapshot> {
  let snapshot: { readAtMs: number; value: Promise<ClusterSnapshot> } | undefined;
  return () => {
    const nowMs = Date.now();
    if (snapshot && nowMs - snapshot.readAtMs < SNAPSHOT_MAX_AGE_MS) {
      return snapshot.value;
    }
    const value = load(nowMs);
    const current = { readAtMs: nowMs, value };
    snapshot = current;
    // A failed read is not shared: the next page asks Redis again.
    value.catch(() => {
      if (snapshot === current) {
        snapshot = undefined;
      }
    });
    return value;
  };
}
