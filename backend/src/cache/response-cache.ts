import type { Redis } from 'ioredis';
import type { TokenUsage } from '../llm/types.js';
import { redisScript } from '../redis/redis-script.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Metrics } from '../telemetry/metrics.js';
import { BUCKET_TTL_SECONDS, currentSecond, FIELD, windowKey } from '../telemetry/stats-window.js';

export interface CachedAnswer {
  response: string;
  model: string;
  provider: string;
  usage: TokenUsage;
  finishReason?: string;
  createdAt: number;
}

/** A cache that never fails its caller: a backend error is a miss (get) or a no-op (set). */
export interface ResponseCache {
  /** Several keys: the first one present wins, and the lookup counts once (a hit or a miss). */
  get(key: string | readonly string[]): Promise<CachedAnswer | undefined>;
  /** `owner` (a signed-in user's CallerRef key): the answer came from their conversation, and goes when they do. */
  set(key: string, answer: CachedAnswer, owner?: string): Promise<void>;
  /** The answers stored from the owner's conversations and still cached (for their data export). */
  owned(owner: string): Promise<CachedAnswer[]>;
  /** Deletes every answer stored from the owner's conversations; throws when Redis fails. */
  forgetOwner(owner: string): Promise<void>;
}

// Reads the first present entry of KEYS[2..] and counts the hit or miss in the
// cluster-wide one-minute window (KEYS[1], telemetry/stats-window.ts), in one round trip.
const GET_AND_COUNT = redisScript(new URL('./get-and-count.lua', import.meta.url));

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
  // The keys of the answers stored from one user's conversations, for account deletion.
  const ownerKey = (owner: string) => `${prefix}cache:owner:${owner}`;

  return {
    async get(key) {
      const entries = (typeof key === 'string' ? [key] : key).map(entryKey);
      try {
        const raw = (await GET_AND_COUNT.run(
          redis,
          [windowKey(prefix, currentSecond()), ...entries],
          [FIELD.cacheHits, FIELD.cacheMisses, BUCKET_TTL_SECONDS],
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

    async set(key, answer, owner) {
      try {
        if (owner === undefined) {
          await redis.set(entryKey(key), JSON.stringify(answer), 'EX', ttlSeconds);
        } else {
          await redis
            .multi()
            .set(entryKey(key), JSON.stringify(answer), 'EX', ttlSeconds)
            .sadd(ownerKey(owner), key)
            .expire(ownerKey(owner), ttlSeconds)
            .exec();
        }
        tracker.succeeded();
      } catch (error) {
        tracker.failed(error);
      }
    },

    async owned(owner) {
      const keys = await redis.smembers(ownerKey(owner));
      const values = keys.length === 0 ? [] : await redis.mget(...keys.map(entryKey));
      return values
        .filter((value): value is string => value !== null)
        .map((value) => JSON.parse(value) as CachedAnswer);
    },

    async forgetOwner(owner) {
      const keys = await redis.smembers(ownerKey(owner));
      await redis.del(ownerKey(owner), ...keys.map(entryKey));
    },
  };
}
