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
  /** An entry for a caller that reads or writes it inside a Redis command of its own (the coalescer's lock). */
  entry(key: string): CacheEntry;
  /** Lists `key` under the owner, before its entry is written, so that deleting the owner always finds it; false when Redis failed (store nothing then). */
  own(owner: string, key: string): Promise<boolean>;
  /**
   * What own() writes, for a command of the owner's to carry instead (their
   * budget's settlement): the index is hash-tagged by the owner's key.
   */
  listing(owner: string, key: string): OwnerListing;
  /** The answers stored from the owner's conversations and still cached (for their data export). */
  owned(owner: string): Promise<CachedAnswer[]>;
  /** Deletes every answer stored from the owner's conversations; throws when Redis fails. */
  forgetOwner(owner: string): Promise<void>;
}

export interface CacheEntry {
  /** Hash-tagged by the key (`...{key}`): another key tagged so shares its cluster slot. */
  redisKey: string;
  ttlSeconds: number;
  /** A raw value read (null: absent), counted as a hit or a miss like get(). */
  read(raw: string | null): CachedAnswer | undefined;
  encode(answer: CachedAnswer): string;
  /** The cache's health tracking, for the caller's commands on the entry. */
  failed(error: unknown): void;
  succeeded(): void;
}

/** Add `member` to the set `key` and let the set expire `ttlSeconds` from now. */
export interface OwnerListing {
  key: string;
  member: string;
  ttlSeconds: number;
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
  const { redis, ttlSeconds, metrics, tracker } = options;
  const entryKey = (key: string) => `${options.prefix}cache:v1:{${key}}`;
  const read = lookupCounter(options);
  const owners = ownerIndex(options, entryKey);
  return {
    async get(key) {
      const entries = (typeof key === 'string' ? [key] : key).map(entryKey);
      try {
        const raw = (await Promise.all(entries.map((entry) => redis.get(entry)))).find((value) => value !== null);
        tracker.succeeded();
        return read(raw);
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
          await owners.add(owner, key);
        }
        await redis.set(entryKey(key), JSON.stringify(answer), 'EX', ttlSeconds);
        tracker.succeeded();
      } catch (error) {
        tracker.failed(error);
      }
    },
    entry: (key) => ({
      redisKey: entryKey(key),
      ttlSeconds,
      read,
      encode: (answer) => JSON.stringify(answer),
      failed: (error) => tracker.failed(error),
      succeeded: () => tracker.succeeded(),
    }),
    async own(owner, key) {
      try {
        await owners.add(owner, key);
        tracker.succeeded();
        return true;
      } catch (error) {
        tracker.failed(error);
        return false;
      }
    },
    listing: (owner, key) => ({ key: owners.key(owner), member: key, ttlSeconds }),
    owned: (owner) => owners.answers(owner),
    forgetOwner: (owner) => owners.forget(owner),
  };
}

/** Decodes a raw value read (null or undefined: absent) and counts the lookup as a hit or a miss. */
function lookupCounter({ metrics, stats }: RedisResponseCacheOptions) {
  return (raw: string | null | undefined): CachedAnswer | undefined => {
    stats.recordCacheLookup(raw !== undefined && raw !== null);
    if (raw === undefined || raw === null) {
      metrics.cacheLookups.inc({ result: 'miss' });
      return undefined;
    }
    metrics.cacheLookups.inc({ result: 'hit' });
    return JSON.parse(raw) as CachedAnswer;
  };
}

/** The keys of the answers stored from one user's conversations, for their export and account deletion. */
function ownerIndex({ redis, prefix, ttlSeconds }: RedisResponseCacheOptions, entryKey: (key: string) => string) {
  // Tagged by the owner's key, as their usage keys are, so that their budget's settlement can list an answer.
  const ownerKey = (owner: string) => `${prefix}cache:owner:{${owner}}`;
  // The untagged name of releases before; its sets expire within the cache's TTL of an upgrade.
  const legacyKey = (owner: string) => `${prefix}cache:owner:${owner}`;
  const members = async (owner: string) => {
    const [current, legacy] = await Promise.all([redis.smembers(ownerKey(owner)), redis.smembers(legacyKey(owner))]);
    return [...new Set([...current, ...legacy])];
  };
  return {
    key: ownerKey,
    async add(owner: string, key: string): Promise<void> {
      await OWNER_ADD.run(redis, [ownerKey(owner)], [key, ttlSeconds]);
    },
    async answers(owner: string): Promise<CachedAnswer[]> {
      const keys = await members(owner);
      const values = await Promise.all(keys.map((key) => redis.get(entryKey(key))));
      return values
        .filter((value): value is string => value !== null)
        .map((value) => JSON.parse(value) as CachedAnswer);
    },
    async forget(owner: string): Promise<void> {
      const keys = await members(owner);
      await Promise.all(keys.map((key) => redis.del(entryKey(key))));
      // One key each: on a Redis Cluster the two names hash to different slots.
      await Promise.all([redis.del(ownerKey(owner)), redis.del(legacyKey(owner))]);
    },
  };
}
