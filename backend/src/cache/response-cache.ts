import type { Redis } from 'ioredis';
import type { TokenUsage } from '../llm/types.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Metrics } from '../telemetry/metrics.js';
import { BUCKET_TTL_SECONDS, currentSecond, FIELD, windowKey } from '../telemetry/stats-window.js';

export interface CachedAnswer {
  response: string;
  model: string;
  provider: string;
  usage: TokenUsage;
  createdAt: number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  hitRate: number;
}

/** A cache that never fails its caller: a backend error is a miss (get) or a no-op (set). */
export interface ResponseCache {
  get(key: string): Promise<CachedAnswer | undefined>;
  set(key: string, answer: CachedAnswer): Promise<void>;
  stats(): Promise<CacheStats>;
}

// Reads the entry and counts the hit or miss, in total and in the
// cluster-wide one-minute window (telemetry/stats-window.ts), in one round trip.
const GET_AND_COUNT = `
local value = redis.call('GET', KEYS[1])
if value then redis.call('INCR', KEYS[2]) else redis.call('INCR', KEYS[3]) end
redis.call('HINCRBY', KEYS[4], value and ARGV[1] or ARGV[2], 1)
redis.call('EXPIRE', KEYS[4], ARGV[3])
return value`;

export interface RedisResponseCacheOptions {
  redis: Redis;
  /** Prefix of every key, e.g. "focus:". */
  prefix: string;
  ttlSeconds: number;
  metrics: Metrics;
  tracker: DegradationTracker;
}

export function createRedisResponseCache(options: RedisResponseCacheOptions): ResponseCache {
  const { redis, prefix, ttlSeconds, metrics, tracker } = options;
  const entryKey = (key: string) => `${prefix}cache:v1:${key}`;
  const hitsKey = `${prefix}stats:cache:hits`;
  const missesKey = `${prefix}stats:cache:misses`;

  return {
    async get(key) {
      try {
        const raw = (await redis.eval(
          GET_AND_COUNT,
          4,
          entryKey(key),
          hitsKey,
          missesKey,
          windowKey(prefix, currentSecond()),
          FIELD.cacheHits,
          FIELD.cacheMisses,
          BUCKET_TTL_SECONDS,
        )) as string | null;
        tracker.succeeded();
        if (raw === null) {
          metrics.cacheLookups.inc({ result: 'miss' });
          return undefined;
        }
        metrics.cacheLookups.inc({ result: 'hit' });
        return JSON.parse(raw) as CachedAnswer;
      } catch (error) {
        tracker.failed(error);
        metrics.cacheLookups.inc({ result: 'error' });
        return undefined;
      }
    },

    async set(key, answer) {
      try {
        await redis.set(entryKey(key), JSON.stringify(answer), 'EX', ttlSeconds);
        tracker.succeeded();
      } catch (error) {
        tracker.failed(error);
      }
    },

    async stats() {
      const [hits, misses] = (await redis.mget(hitsKey, missesKey)).map((value) => Number(value ?? 0)) as [
        number,
        number,
      ];
      const total = hits + misses;
      return { hits, misses, hitRate: total === 0 ? 0 : hits / total };
    },
  };
}
