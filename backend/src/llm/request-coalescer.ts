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
    /** Where the result is stored: read with the lock, written with the unlock (no command of its own). */
    stored?: StoredResult<T>,
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

/**
 * The caller's stored copy of the result (the response cache's entry), in the
 * lock's Redis Cluster slot: its key carries the same `{key}` hash tag.
 */
export interface StoredResult<T> {
  redisKey: string;
  /** The stored value read with the lock (null: none); a value ends the run without leading. */
  found(raw: string | null): T | undefined;
  /** What to store from the leader's value, or undefined when the caller stores it (or nothing). */
  store(value: T): { raw: string; ttlSeconds: number } | undefined;
  /** The owner's health tracking: a command that read or wrote it failed, or went through. */
  failed(error: unknown): void;
  succeeded(): void;
}

type LeaderOutcome = 'done' | 'failed';
type WaitOutcome = LeaderOutcome | 'gone' | 'timeout';

/** How often a follower checks that the leader's lock still exists (covers a missed message). */
const LOCK_CHECK_MS = 500;
const DEFAULT_LOCK_TTL_MS = 3000;

// Extends the lock only while this leader still owns it.
const RENEW = redisScript(new URL('./coalesce-renew.lua', import.meta.url));

// Reads the stored result, else takes the lock.
const CLAIM = redisScript(new URL('./coalesce-claim.lua', import.meta.url));

// Stores the result (when given), deletes the lock only if this leader still owns it, then tells the followers.
const FINISH = redisScript(new URL('./coalesce-finish.lua', import.meta.url));

/** What the steps of one coalescer share. */
interface Coalescer {
  options: RedisCoalescerOptions;
  lockTtlMs: number;
  log: Logger;
  channel: string;
  /** Followers waiting, per key, for the leader's message. */
  waiters: Map<string, Set<(outcome: LeaderOutcome) => void>>;
}

type Claimed<T> = { kind: 'lead' | 'wait' } | { kind: 'found'; value: T };

/** What one leader writes with its unlock: the caller's stored copy of the result. */
interface StoreWrite {
  redisKey: string;
  raw: string;
  ttlSeconds: number;
  owner: StoredResult<unknown>;
}

// Tagged by the key: a caller's stored result (`...{key}`) shares the lock's cluster slot.
const lockKey = (coalescer: Coalescer, key: string) => `${coalescer.options.prefix}coalesce:lock:{${key}}`;

export function createRedisCoalescer(options: RedisCoalescerOptions): RequestCoalescer {
  const coalescer: Coalescer = {
    options,
    lockTtlMs: options.lockTtlMs ?? DEFAULT_LOCK_TTL_MS,
    log: options.logger.child({ component: 'coalescer' }),
    channel: `${options.prefix}coalesce:done`,
    waiters: new Map(),
  };
  const { subscriber } = options;
  const onMessage = (from: string, message: string) => notifyWaiters(coalescer, from, message);
  subscriber.on('message', onMessage);
  if (options.waitMs > 0) {
    subscriber.subscribe(coalescer.channel).catch((error: unknown) => options.tracker.failed(error));
  }
  return {
    run: (key, lead, follow, stored) =>
      options.waitMs > 0 ? runCoalesced(coalescer, key, lead, follow, stored) : runAlone(coalescer, lead, stored),
    close() {
      subscriber.off('message', onMessage);
    },
  };
}

/** A leader's message (`key|done` or `key|failed`) wakes that key's followers. */
function notifyWaiters(coalescer: Coalescer, from: string, message: string): void {
  if (from !== coalescer.channel) {
    return;
  }
  const separator = message.lastIndexOf('|');
  const outcome = message.slice(separator + 1) === 'done' ? 'done' : 'failed';
  for (const notify of coalescer.waiters.get(message.slice(0, separator)) ?? []) {
    notify(outcome);
  }
}

/** Coalescing off: the stored result if there is one, else the work, stored alone. */
async function runAlone<T>(
  coalescer: Coalescer,
  lead: () => Promise<T>,
  stored: StoredResult<T> | undefined,
): Promise<{ value: T; coalesced: boolean }> {
  if (stored) {
    const raw = await coalescer.options.redis.get(stored.redisKey).then(
      (value) => {
        stored.succeeded();
        return value;
      },
      (error: unknown) => {
        stored.failed(error);
        return undefined;
      },
    );
    const value = raw === undefined ? undefined : stored.found(raw);
    if (value !== undefined) {
      return { value, coalesced: false };
    }
  }
  return { value: await leadAlone(coalescer, lead, stored), coalesced: false };
}

/**
 * Claim the lock (reading the stored result with it), then lead, or wait for
 * the leader and follow. A follower whose leader vanished (died, lock expired)
 * tries to take over, so one of them leads again instead of all of them
 * calling upstream at once.
 */
async function runCoalesced<T>(
  coalescer: Coalescer,
  key: string,
  lead: () => Promise<T>,
  follow: () => Promise<T | undefined>,
  stored: StoredResult<T> | undefined,
): Promise<{ value: T; coalesced: boolean }> {
  const { metrics, tracker } = coalescer.options;
  const started = Date.now();
  const deadline = started + coalescer.options.waitMs;
  // The stored result is read once, with the first claim: a follower taking over finds it through follow().
  let first = true;
  for (;;) {
    const token = randomUUID();
    let claimed: Claimed<T>;
    try {
      claimed = await claim(coalescer, key, token, first ? stored : undefined);
      tracker.succeeded();
      if (first) {
        stored?.succeeded();
      }
      first = false;
    } catch (error) {
      tracker.failed(error);
      // The stored result was not read either: its owner hears of the failure as from its own lookup.
      if (first) {
        stored?.failed(error);
      }
      return { value: await leadAlone(coalescer, lead, stored), coalesced: false };
    }
    if (claimed.kind === 'found') {
      return { value: claimed.value, coalesced: false };
    }
    if (claimed.kind === 'lead') {
      return { value: await leadHoldingLock(coalescer, key, token, lead, stored), coalesced: false };
    }
    const waited = await waitForLeader(coalescer, key, deadline);
    if (waited === 'done' || waited === 'gone') {
      const value = await follow();
      if (value !== undefined) {
        metrics.coalesced.inc();
        coalescer.log.info({ waitedMs: Date.now() - started }, 'coalesced with an identical request in flight');
        return { value, coalesced: true };
      }
    }
    if (waited !== 'gone' || Date.now() >= deadline) {
      coalescer.log.info(
        { waited, waitedMs: Date.now() - started },
        'coalescing leader gave no answer; calling upstream alone',
      );
      return { value: await leadAlone(coalescer, lead, stored), coalesced: false };
    }
  }
}

/** Takes the lock, or finds the stored result (read in the same command when there is one). */
async function claim<T>(
  coalescer: Coalescer,
  key: string,
  token: string,
  stored: StoredResult<T> | undefined,
): Promise<Claimed<T>> {
  const { redis } = coalescer.options;
  if (!stored) {
    const taken = (await redis.set(lockKey(coalescer, key), token, 'PX', coalescer.lockTtlMs, 'NX')) === 'OK';
    return { kind: taken ? 'lead' : 'wait' };
  }
  const [kind, raw] = (await CLAIM.run(
    redis,
    [lockKey(coalescer, key), stored.redisKey],
    [token, coalescer.lockTtlMs],
  )) as [string, string?];
  const value = kind === 'found' ? stored.found(raw ?? null) : undefined;
  if (value !== undefined) {
    return { kind: 'found', value };
  }
  if (kind !== 'found') {
    // Counted as a miss: the lock was asked for because nothing was stored.
    stored.found(null);
  }
  return { kind: kind === 'lead' ? 'lead' : 'wait' };
}

/** The leader's message, the lock's disappearance, or the deadline, whichever comes first. */
function waitForLeader(coalescer: Coalescer, key: string, deadline: number): Promise<WaitOutcome> {
  const { waiters } = coalescer;
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
        if ((await coalescer.options.redis.exists(lockKey(coalescer, key))) === 0) {
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

/** Does the work holding the lock (renewed meanwhile), then stores the result with the unlock. */
async function leadHoldingLock<T>(
  coalescer: Coalescer,
  key: string,
  token: string,
  lead: () => Promise<T>,
  stored: StoredResult<T> | undefined,
): Promise<T> {
  const { redis, tracker } = coalescer.options;
  const renewal = setInterval(() => {
    RENEW.run(redis, [lockKey(coalescer, key)], [token, String(coalescer.lockTtlMs)]).catch((error: unknown) =>
      tracker.failed(error),
    );
  }, coalescer.lockTtlMs / 3);
  let outcome: LeaderOutcome = 'failed';
  let write: StoreWrite | undefined;
  try {
    const value = await lead();
    outcome = 'done';
    const storing = stored?.store(value);
    write = stored && storing ? { redisKey: stored.redisKey, ...storing, owner: stored } : undefined;
    return value;
  } finally {
    clearInterval(renewal);
    await finishLeading(coalescer, key, token, outcome, write);
  }
}

async function finishLeading(
  coalescer: Coalescer,
  key: string,
  token: string,
  outcome: LeaderOutcome,
  write: StoreWrite | undefined,
): Promise<void> {
  const { redis, tracker } = coalescer.options;
  const message = [token, coalescer.channel, `${key}|${outcome}`];
  try {
    await (write
      ? FINISH.run(redis, [lockKey(coalescer, key), write.redisKey], [...message, write.raw, write.ttlSeconds])
      : FINISH.run(redis, [lockKey(coalescer, key)], message));
    write?.owner.succeeded();
  } catch (error) {
    tracker.failed(error);
    write?.owner.failed(error);
  }
}

/** Work done without the lock (coalescing off, Redis failing, the leader gave nothing): stored alone. */
async function leadAlone<T>(
  coalescer: Coalescer,
  lead: () => Promise<T>,
  stored: StoredResult<T> | undefined,
): Promise<T> {
  const value = await lead();
  const storing = stored?.store(value);
  if (stored && storing) {
    await coalescer.options.redis.set(stored.redisKey, storing.raw, 'EX', storing.ttlSeconds).then(
      () => stored.succeeded(),
      (error: unknown) => stored.failed(error),
    );
  }
  return value;
}
