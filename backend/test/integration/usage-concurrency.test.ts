import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callerKeys } from '../../src/redis/caller-key.js';
import { createRedisClient, type Redis, waitForRedis } from '../../src/redis/redis-client.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { type BudgetReservation, createTokenBudget, type TokenBudget } from '../../src/usage/token-budget.js';
import { freePort } from '../helpers/backend-process.js';
import { deleteTestPrefix, LogCapture, testPrefix } from '../helpers/test-backend.js';

const silent = createLogger({ level: 'silent', instanceId: 'usage-test' });
const LEASE_MS = 60_000;

describe('per-user cap on concurrent upstream calls (real Redis)', () => {
  const prefix = testPrefix('usage-concurrency');
  const clients: Redis[] = [];
  /** A fresh user per test, named as CallerRef.key names one. */
  const freshUser = () => callerKeys('test key').hash(`user:${randomUUID()}`);

  const client = async (name: string) => {
    const redis = createRedisClient({
      url: 'redis://127.0.0.1:6379',
      connectionName: name,
      commandTimeoutMs: 2000,
      logger: silent,
    });
    clients.push(redis);
    expect(await waitForRedis(redis, 5000)).toBe(true);
    return redis;
  };

  /** One instance's slots (with an unlimited budget unless given one), on its own connection. */
  async function limiter(now?: () => number, tokensPerDay = 0): Promise<TokenBudget> {
    const metrics = createMetrics();
    return createTokenBudget({
      redis: await client(`usage-concurrency-${clients.length}`),
      prefix,
      tokensPerDay,
      maxConcurrent: 2,
      leaseMs: LEASE_MS,
      now,
      metrics,
      tracker: createDegradationTracker('budget', silent, metrics),
    });
  }

  /** A slot, or undefined when refused for it. */
  async function acquire(target: TokenBudget, userKey: string, tokens = 1): Promise<BudgetReservation | undefined> {
    const result = await target.reserve(userKey, tokens, { slot: true });
    if (!result.ok) {
      expect(result).toMatchObject({ reason: 'concurrency', retryAfterSeconds: 1 });
      return undefined;
    }
    expect(result.reservation.slot).toBe(true);
    return result.reservation;
  }

  async function acquired(target: TokenBudget, userKey: string): Promise<BudgetReservation> {
    const lease = await acquire(target, userKey);
    if (!lease) {
      throw new Error('expected a slot');
    }
    return lease;
  }

  beforeAll(async () => {
    await client('usage-concurrency-setup');
  });

  afterAll(async () => {
    for (const redis of clients) {
      await redis.quit();
    }
    await deleteTestPrefix(prefix);
  });

  it('refuses a third call in flight, and grants it once one is released', async () => {
    const limit = await limiter();
    const userKey = freshUser();
    const first = await acquired(limit, userKey);
    await acquired(limit, userKey);
    expect(await acquire(limit, userKey)).toBeUndefined();
    // Another user is not held back by this one.
    expect(await acquire(limit, freshUser())).toBeDefined();

    await limit.settle(first, 10);
    await limit.settle(first, 10);
    expect(await acquire(limit, userKey)).toBeDefined();
    expect(await acquire(limit, userKey)).toBeUndefined();
  });

  it('grants exactly the maximum to calls racing from two instances', async () => {
    const [one, two] = [await limiter(), await limiter()];
    const userKey = freshUser();
    const leases = await Promise.all(
      Array.from({ length: 10 }, (_, index) => acquire(index % 2 === 0 ? one : two, userKey)),
    );
    const granted = leases.filter((lease) => lease !== undefined);
    expect(granted).toHaveLength(2);

    // A slot released on one instance is free for the other.
    await one.release(granted[0] as BudgetReservation);
    expect(await acquire(two, userKey)).toBeDefined();
    expect(await acquire(one, userKey)).toBeUndefined();
  });

  it('frees the slot of a leaked lease (its instance died) when the lease lapses', async () => {
    let current = Date.now();
    const limit = await limiter(() => current);
    const userKey = freshUser();
    await acquired(limit, userKey);
    await acquired(limit, userKey);
    current += LEASE_MS - 1;
    expect(await acquire(limit, userKey)).toBeUndefined();
    current += 2;
    expect(await acquire(limit, userKey)).toBeDefined();
    expect(await acquire(limit, userKey)).toBeDefined();
    expect(await acquire(limit, userKey)).toBeUndefined();
  });

  it('holds neither a slot nor tokens for a call refused by either', async () => {
    const limit = await limiter(undefined, 1000);
    const userKey = freshUser();
    // Refused by the budget: no slot taken, so two calls still fit.
    expect(await limit.reserve(userKey, 1001, { slot: true })).toMatchObject({ ok: false, reason: 'budget' });
    const first = await acquired(limit, userKey);
    await acquired(limit, userKey);
    // Refused for its slot: none of its 500 tokens held.
    expect(await acquire(limit, userKey, 500)).toBeUndefined();
    await limit.settle(first, 100);
    const third = await acquire(limit, userKey, 898);
    expect(third).toMatchObject({ tracked: true, slot: true });
    expect(await limit.usage(userKey)).toEqual({ tokensToday: 100, budget: 1000 });
  });

  it('fails open while Redis is unreachable, warning once', async () => {
    const logs = new LogCapture();
    const logger = createLogger({ level: 'info', instanceId: 'usage-test' }, logs);
    const down = createRedisClient({
      url: `redis://127.0.0.1:${await freePort()}`,
      connectionName: 'usage-concurrency-down',
      commandTimeoutMs: 200,
      logger: silent,
    });
    try {
      const metrics = createMetrics();
      const open = createTokenBudget({
        redis: down,
        prefix,
        tokensPerDay: 0,
        maxConcurrent: 1,
        metrics,
        tracker: createDegradationTracker('budget', logger, metrics),
      });
      const userKey = freshUser();
      for (let call = 0; call < 5; call += 1) {
        const result = await open.reserve(userKey, 1, { slot: true });
        expect(result).toMatchObject({ ok: true, reservation: { tracked: false, slot: false } });
        if (result.ok) {
          await open.release(result.reservation);
        }
      }
      expect(logs.lines).toHaveLength(1);
      expect(JSON.parse(logs.lines[0] as string)).toMatchObject({ level: 'warn', component: 'budget' });
    } finally {
      down.disconnect();
    }
  });
});
