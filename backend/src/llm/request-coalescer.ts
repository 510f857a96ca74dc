import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { redisScript } from '../redis/redis-script.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';

/**
 * Makes identical work in flight at the same time, on any instance, run once.
 * The first caller of a key leads (a Redis lock, SET NX with a TTL); the
 * others wait, bounded, for its outcome (pub/sub, with a slow check of the
 * lock in case a message is missed) and then read its result, which the
 * leader has stored (the response cache). When the leader fails, dies or
 * takes too long, each follower does the work itself: the quota governor and
 * the circuit breaker still bound what that costs upstream.
 */
export interface RequestCoalescer {
  run<T>(
    key: string,
    lead: () => Promise<T>,
    follow: () => Promise<T | undefined>,
    /** The caller's logger (with its request id); the coalescer's own otherwise. */
    log?: Logger,
  ): Promise<{ value: T; coalesced: boolean }>;
  close(): void;
}

export interface RedisCoalescerOptions {
  redis: Redis;
  /** A connection of its own: a subscribed client can run nothing else. */
  subscriber: Redis;
  prefix: string;
  /** How long followers wait for a leader; 0 turns coalescing off. */
  waitMs: number;
  /** Lifetime of the leader's lock, renewed while it works: how soon followers notice a dead leader. */
  lockTtlMs?: number;
  metrics: Metrics;
  logger: Logger;
  tracker: DegradationTracker;
}

type LeaderOutcome = 'done' | 'failed';
type WaitOutcome = LeaderOutcome | 'gone' | 'timeout';

/** How often a follower checks that the leader's lock still exists (covers a missed message). */
const LOCK_CHECK_MS = 500;
const DEFAULT_LOCK_TTL_MS = 3000;

// Extends the lock only while this leader still owns it.
const RENEW = redisScript(new URL('./coalesce-renew.lua', import.meta.url));

// Deletes the lock only if this leader still owns it, then tells the followers.
const FINISH = redisScript(new URL('./coalesce-finish.lua', import.meta.url));

export function createRedisCoalescer(options: RedisCoalescerOptions): RequestCoalescer {
  const { redis, subscriber, prefix, waitMs, metrics, tracker } = options;
  const lockTtlMs = options.lockTtlMs ?? DEFAULT_LOCK_TTL_MS;
  const ownLog = options.logger;
  const channel = `${prefix}coalesce:done`;
  const lockKey = (key: string) => `${prefix}coalesce:lock:${key}`;
  const waiters = new Map<string, Set<(outcome: LeaderOutcome) => void>>();

  function onMessage(from: string, message: string) {
    if (from !== channel) {
      return;
    }
    const separator = message.lastIndexOf('|');
    const outcome = message.slice(separator + 1) === 'done' ? 'done' : 'failed';
    for (const notify of waiters.get(message.slice(0, separator)) ?? []) {
      notify(outcome);
    }
  }
  subscriber.on('message', onMessage);
  if (waitMs > 0) {
    subscriber.subscribe(channel).catch((error: unknown) => tracker.failed(error));
  }

  function waitForLeader(key: string, deadline: number): Promise<WaitOutcome> {
    return new Promise((resolve) => {
      const listeners = waiters.get(key) ?? new Set();
      waiters.set(key, listeners);
      let settled = false;
      const finish = (outcome: WaitOutcome) => {
        if (settled) {
          return;
        }
        settled = true;
        clearInterval(poll);
        clearTimeout(timer);
        listeners.delete(finish);
        if (listeners.size === 0) {
          waiters.delete(key);
        }
        resolve(outcome);
      };
      const checkLock = async () => {
        try {
          if ((await redis.exists(lockKey(key))) === 0) {
            finish('gone');
          }
        } catch {
          // Redis trouble: keep waiting for the message or the deadline.
        }
      };
      listeners.add(finish);
      const poll = setInterval(() => void checkLock(), LOCK_CHECK_MS);
      const timer = setTimeout(() => finish('timeout'), Math.max(0, deadline - Date.now()));
      // The leader may have finished between our failed SET NX and now.
      void checkLock();
    });
  }

  async function finishLeading(key: string, token: string, outcome: LeaderOutcome): Promise<void> {
    try {
      await FINISH.run(redis, [lockKey(key)], [token, channel, `${key}|${outcome}`]);
    } catch (error) {
      tracker.failed(error);
    }
  }

  async function leadHoldingLock<T>(key: string, token: string, lead: () => Promise<T>): Promise<T> {
    const renewal = setInterval(() => {
      RENEW.run(redis, [lockKey(key)], [token, String(lockTtlMs)]).catch((error: unknown) => tracker.failed(error));
    }, lockTtlMs / 3);
    let outcome: LeaderOutcome = 'failed';
    try {
      const value = await lead();
      outcome = 'done';
      return value;
    } finally {
      clearInterval(renewal);
      await finishLeading(key, token, outcome);
    }
  }

  return {
    async run(key, lead, follow, callerLog) {
      const log = (callerLog ?? ownLog).child({ component: 'coalescer' });
      if (waitMs <= 0) {
        return { value: await lead(), coalesced: false };
      }
      const deadline = Date.now() + waitMs;
      const started = Date.now();
      // A follower whose leader vanished (died, lock expired) tries to take over, so
      // one of them leads again instead of all of them calling upstream at once.
      for (;;) {
        const token = randomUUID();
        let leader: boolean;
        try {
          leader = (await redis.set(lockKey(key), token, 'PX', lockTtlMs, 'NX')) === 'OK';
          tracker.succeeded();
        } catch (error) {
          tracker.failed(error);
          return { value: await lead(), coalesced: false };
        }
        if (leader) {
          return { value: await leadHoldingLock(key, token, lead), coalesced: false };
        }

        const waited = await waitForLeader(key, deadline);
        if (waited === 'done' || waited === 'gone') {
          const value = await follow();
          if (value !== undefined) {
            metrics.coalesced.inc();
            log.info({ waitedMs: Date.now() - started }, 'coalesced with an identical request in flight');
            return { value, coalesced: true };
          }
        }
        if (waited !== 'gone' || Date.now() >= deadline) {
          log.info(
            { waited, waitedMs: Date.now() - started },
            'coalescing leader gave no answer; calling upstream alone',
          );
          return { value: await lead(), coalesced: false };
        }
      }
    },

    close() {
      subscriber.off('message', onMessage);
    },
  };
}
