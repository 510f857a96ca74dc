import type { Redis } from 'ioredis';
import type { TokenUsage } from '../llm/types.js';
import { redisScript } from '../redis/redis-script.js';
import type { ClusterStats } from '../telemetry/cluster-stats.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Metrics } from '../telemetry/metrics.js';

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

// SADD and EXPIRE of the owner's index in one command (a MULTI of them was four).
const OWNER_ADD = redisScript(new URL('./owner-add.lua', import.meta.url));

export interface RedisResponseCacheOptions {
  redis: Redis;
  /** Prefix of every key, e.g. "focus:". */
  prefix: string;
  ttlSeconds: number;
  metrics: Metrics;
  /** Counts each lookup (hit or miss) in the cluster-wide window, batched with the other figures. */
  stats: Pick<ClusterStats, 'recordCacheLookup'>;
  tracker: DegradationTracker;
}

/**
 * Every command names one key, or keys of one owner: each entry hashes to its
 * own Redis Cluster slot (entries are shared by everyone who asks the same),
 * so an owner's index and the entries it lists are never in one command.
 */
export function createRedisResponseCache(options: RedisResponseCacheOptions): ResponseCache {
  const { redis, prefix, ttlSeconds, metrics, stats, tracker } = options;
  const entryKey = (key: string) => `${prefix}cache:v1:${key}`;
  // The keys of the answers stored from one user's conversations, for account deletion.
  const ownerKey = (owner: string) => `${prefix}cache:owner:${owner}`;

  return {
    async get(key) {
      const entries = (typeof key === 'string' ? [key] : key).map(entryKey);
      try {
        const raw = (await Promise.all(entries.map((entry) => redis.get(entry)))).find((value) => value !== null);
        tracker.succeeded();
        stats.recordCacheLookup(raw !== undefined);
        if (raw === undefined) {
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
        if (owner !== undefined) {
          // The owner's index first: an entry is never stored unlisted, so deleting the owner finds it.
          await OWNER_ADD.run(redis, [ownerKey(owner)], [key, ttlSeconds]);
        }
        await redis.set(entryKey(key), JSON.stringify(answer), 'EX', ttlSeconds);
        tracker.succeeded();
      } catch (error) {
        tracker.failed(error);
      }
    },

    async owned(owner) {
      const keys = await redis.smembers(ownerKey(owner));
      const values = await Promise.all(keys.map((key) => redis.get(entryKey(key))));
      return values
        .filter((value): value is string => value !== null)
        .map((value) => JSON.parse(value) as CachedAnswer);
    },

    async forgetOwner(owner) {
      const keys = await redis.smembers(ownerKey(owner));
      await Promise.all(keys.map((key) => redis.del(entryKey(key))));
      await redis.del(ownerKey(owner));
    },
  };
}
