import type { Redis } from 'ioredis';
import type { CallerKeys } from '../redis/caller-key.js';
import { redisScript } from '../redis/redis-script.js';
import { fromRedis, RedisUnavailableError } from '../redis/redis-unavailable.js';
import type { DegradationTracker } from './degradation.js';
import { createStatsBatch } from './stats-batch.js';
import {
  BUCKET_TTL_SECONDS,
  currentSecond,
  FIELD,
  LATENCY_BOUNDS_MS,
  latencyBucketIndex,
  latencyField,
  upstreamCallsField,
  upstreamTokensField,
  windowKey,
  windowKeys,
} from './stats-window.js';

export interface RequestSample {
  callerId: string;
  status: number;
  latencyMs: number;
}

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
export interface ClusterStats {
  recordRequest(sample: RequestSample): void;
  recordUpstream(provider: string, tokens: number): void;
  /** One response-cache lookup, a hit or a miss. */
  recordCacheLookup(hit: boolean): void;
  /** Writes what is pending now (at shutdown). Never rejects. */
  flush(): Promise<void>;
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

/** How long samples gather in memory before one write; the figures lag by at most this. */
const FLUSH_INTERVAL_MS = 250;
/** Past every instance's next flush (with room for a slow one) after an account is deleted. */
/** The active users' members past the window go every this many flushes (about 5 s). */
const PRUNE_EVERY_FLUSHES = 20;
/** One command per flush: the window hashes and the active users share the {stats} slot. */
const FLUSH = redisScript(new URL('./stats-flush.lua', import.meta.url));
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
  const batch = createStatsBatch();
  let timer: NodeJS.Timeout | undefined;
  let flushes = 0;
  let snapshot: { readAtMs: number; value: Promise<ClusterSnapshot> } | undefined;

  function schedule(): void {
    if (!timer) {
      timer = setTimeout(() => {
        timer = undefined;
        void flush();
      }, FLUSH_INTERVAL_MS);
      timer.unref();
    }
  }

  async function flush(): Promise<void> {
    if (batch.empty) {
      return;
    }
    const { buckets, callers } = batch.take();
    const keys = [activeKey];
    // Hashed: who is active matters, not their address.
    const args: (string | number)[] = [
      BUCKET_TTL_SECONDS,
      options.activeUserWindowSeconds,
      // Reads count by score, so members past the window only take room: pruned every few flushes.
      flushes % PRUNE_EVERY_FLUSHES === 0 ? Date.now() - activeWindowMs : '',
      callers.size,
      ...[...callers].flatMap(([id, atMs]) => [atMs, options.callerKeys.hash(id)]),
    ];
    flushes += 1;
    for (const [second, fields] of buckets) {
      keys.push(windowKey(prefix, second));
      args.push(fields.size, ...[...fields].flat());
    }
    try {
      await FLUSH.run(redis, keys, args);
      tracker.succeeded();
    } catch (error) {
      tracker.failed(error);
    }
  }

  /**
   * This instance's pending samples go first, on the same connection, so none
   * of them re-adds the caller. Other instances may still hold a sample of
   * theirs for up to one flush interval: a second removal after that sweeps it.
   */
  async function forgetCaller(callerId: string): Promise<void> {
    // Awaited: the flush script may need a second send (NOSCRIPT on a fresh server), which could land after.
    await flush();
    const member = options.callerKeys.hash(callerId);
    await redis.zrem(activeKey, member);
    setTimeout(() => {
      redis.zrem(activeKey, member).catch((error: unknown) => tracker.failed(error));
    }, FORGET_SWEEP_MS).unref();
  }

  /** Writes this instance's pending samples first, so the read sees them. */
  async function read(pipeline: ReturnType<Redis['pipeline']>): Promise<unknown[]> {
    await flush();
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

  async function readLastMinute(nowMs: number): Promise<ClusterSnapshot> {
    const pipeline = redis.pipeline().zcount(activeKey, nowMs - activeWindowMs, '+inf');
    for (const key of windowKeys(prefix, currentSecond(nowMs))) {
      pipeline.hgetall(key);
    }
    const [count, ...buckets] = await read(pipeline);
    const totals = emptyTotals();
    for (const bucket of buckets) {
      addBucket(totals, bucket as Record<string, string>);
    }
    return { activeUsers: Number(count), totals };
  }

  return {
    recordRequest(sample) {
      const nowMs = Date.now();
      const second = currentSecond(nowMs);
      batch.add(second, FIELD.requests, 1);
      batch.add(second, FIELD.latencyMicros, Math.round(sample.latencyMs * 1000));
      batch.add(second, latencyField(latencyBucketIndex(sample.latencyMs)), 1);
      if (sample.status >= 500) {
        batch.add(second, FIELD.serverErrors, 1);
      } else if (sample.status >= 400) {
        batch.add(second, FIELD.clientErrors, 1);
      }
      batch.touch(sample.callerId, nowMs);
      schedule();
    },

    recordCacheLookup(hit) {
      batch.add(currentSecond(), hit ? FIELD.cacheHits : FIELD.cacheMisses, 1);
      schedule();
    },

    recordUpstream(provider, tokens) {
      const second = currentSecond();
      batch.add(second, upstreamCallsField(provider), 1);
      batch.add(second, upstreamTokensField(provider), tokens);
      schedule();
    },

    flush() {
      clearTimeout(timer);
      timer = undefined;
      return flush();
    },

    async activeUsers() {
      const [count] = await read(redis.pipeline().zcount(activeKey, Date.now() - activeWindowMs, '+inf'));
      return Number(count);
    },

    forgetCaller,

    lastMinute() {
      const nowMs = Date.now();
      if (snapshot && nowMs - snapshot.readAtMs < SNAPSHOT_MAX_AGE_MS) {
        return snapshot.value;
      }
      const value = readLastMinute(nowMs);
      const current = { readAtMs: nowMs, value };
      snapshot = current;
      // A failed read is not shared: the next page asks Redis again.
      value.catch(() => {
        if (snapshot === current) {
          snapshot = undefined;
        }
      });
      return value;
    },
  };
}
