import type { Redis } from 'ioredis';
import { hashCaller } from '../http/request-context.js';
import type { DegradationTracker } from './degradation.js';
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
 * instance reads the same numbers. Writes are fire-and-forget (one pipelined
 * round trip, never awaited by the request); a Redis failure loses the sample,
 * is counted and logged once. Reads throw, so the caller can refuse honestly.
 */
export interface ClusterStats {
  recordRequest(sample: RequestSample): void;
  recordUpstream(provider: string, tokens: number): void;
  activeUsers(): Promise<number>;
  lastMinute(): Promise<ClusterSnapshot>;
}

export interface ClusterStatsOptions {
  redis: Redis;
  prefix: string;
  /** A caller counts as active this long after its last request (the seed's 5 minutes). */
  activeUserWindowSeconds: number;
  tracker: DegradationTracker;
}

type PipelineResult = [Error | null, unknown][] | null;

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
  const activeKey = `${prefix}stats:active-users`;
  const activeWindowMs = options.activeUserWindowSeconds * 1000;
  let lastTrimSecond = 0;

  function send(pipeline: ReturnType<Redis['pipeline']>): void {
    void pipeline.exec().then(
      (results: PipelineResult) => {
        const failure = results?.find(([error]) => error !== null)?.[0];
        if (failure) {
          tracker.failed(failure);
        } else {
          tracker.succeeded();
        }
      },
      (error: unknown) => tracker.failed(error),
    );
  }

  async function read(pipeline: ReturnType<Redis['pipeline']>): Promise<unknown[]> {
    try {
      const results: PipelineResult = await pipeline.exec();
      const values = (results ?? []).map(([error, value]) => {
        if (error) {
          throw error;
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

  return {
    recordRequest(sample) {
      const nowMs = Date.now();
      const second = currentSecond(nowMs);
      const key = windowKey(prefix, second);
      const pipeline = redis
        .pipeline()
        .zadd(activeKey, nowMs, hashCaller(sample.callerId))
        .hincrby(key, FIELD.requests, 1)
        .hincrby(key, FIELD.latencyMicros, Math.round(sample.latencyMs * 1000))
        .hincrby(key, latencyField(latencyBucketIndex(sample.latencyMs)), 1);
      if (sample.status >= 500) {
        pipeline.hincrby(key, FIELD.serverErrors, 1);
      } else if (sample.status >= 400) {
        pipeline.hincrby(key, FIELD.clientErrors, 1);
      }
      pipeline.expire(key, BUCKET_TTL_SECONDS);
      // Drop callers gone quiet at most once a second per instance; the TTL
      // removes the whole set when traffic stops.
      if (second !== lastTrimSecond) {
        lastTrimSecond = second;
        pipeline.zremrangebyscore(activeKey, '-inf', nowMs - activeWindowMs);
        pipeline.expire(activeKey, options.activeUserWindowSeconds);
      }
      send(pipeline);
    },

    recordUpstream(provider, tokens) {
      const key = windowKey(prefix, currentSecond());
      send(
        redis
          .pipeline()
          .hincrby(key, upstreamCallsField(provider), 1)
          .hincrby(key, upstreamTokensField(provider), tokens)
          .expire(key, BUCKET_TTL_SECONDS),
      );
    },

    async activeUsers() {
      const [count] = await read(redis.pipeline().zcount(activeKey, Date.now() - activeWindowMs, '+inf'));
      return Number(count);
    },

    async lastMinute() {
      const nowMs = Date.now();
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
    },
  };
}
