import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { DegradationTracker } from '../telemetry/degradation.js';
import { inflightKey } from './usage-keys.js';
import { acquireScript } from './usage-scripts.js';

/** One of a user's upstream calls in flight. */
export interface ConcurrencyLease {
  readonly id: string;
  readonly userKey: string;
  /** False when nothing was stored (Redis failing): releasing it does nothing. */
  readonly tracked: boolean;
}

/** A cap on each user's concurrent upstream calls, shared by every instance. */
export interface UserConcurrency {
  /** A lease, or undefined when the user already has the maximum in flight. */
  acquire(userKey: string): Promise<ConcurrencyLease | undefined>;
  release(lease: ConcurrencyLease): Promise<void>;
  /** Deletes the user's key (account deletion); throws when Redis fails. */
  forget(userKey: string): Promise<void>;
}

export interface UserConcurrencyOptions {
  redis: Redis;
  prefix: string;
  maxConcurrent: number;
  /** How long a lease holds a slot unreleased (its instance may have died); longer than any call. */
  leaseMs?: number;
  now?: () => number;
  tracker: DegradationTracker;
}

const DEFAULT_LEASE_MS = 120_000;

export function createUserConcurrency(options: UserConcurrencyOptions): UserConcurrency {
  const { redis, prefix, maxConcurrent, tracker } = options;
  const now = options.now ?? Date.now;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1 || !(leaseMs > 0)) {
    throw new Error('user concurrency: maxConcurrent must be an integer >= 1 and leaseMs > 0');
  }

  return {
    async acquire(userKey) {
      const id = randomUUID();
      try {
        const granted = await acquireScript.run(
          redis,
          [inflightKey(prefix, userKey)],
          [id, maxConcurrent, now(), leaseMs],
        );
        tracker.succeeded();
        return granted === 1 ? { id, userKey, tracked: true } : undefined;
      } catch (error) {
        // Fail open: the per-user rate limit and the upstream quota still bound a user while Redis is down.
        tracker.failed(error);
        return { id, userKey, tracked: false };
      }
    },

    async release(lease) {
      if (!lease.tracked) {
        return;
      }
      try {
        await redis.zrem(inflightKey(prefix, lease.userKey), lease.id);
        tracker.succeeded();
      } catch (error) {
        // The slot frees itself when its lease lapses.
        tracker.failed(error);
      }
    },

    async forget(userKey) {
      await redis.del(inflightKey(prefix, userKey));
    },
  };
}
