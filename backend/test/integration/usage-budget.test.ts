import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callerKeys } from '../../src/redis/caller-key.js';
import { createRedisClient, type Redis, waitForRedis } from '../../src/redis/redis-client.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics.js';
import { type BudgetReservation, createTokenBudget, type TokenBudget } from '../../src/usage/token-budget.js';
import { DAY_MS } from '../../src/usage/usage-keys.js';
import { freePort } from '../helpers/backend-process.js';
import { deleteTestPrefix, LogCapture, testPrefix } from '../helpers/test-backend.js';

const silent = createLogger({ level: 'silent', instanceId: 'usage-test' });
const LEASE_MS = 120_000;

/** A clock the test moves; it starts from the real time so key TTLs stay meaningful to Redis. */
function testClock(start = Date.now()) {
  let current = start;
  return {
    now: () => current,
    advance(ms: number) {
      current += ms;
    },
  };
}

const counterValue = async (counter: Metrics['budgetFailOpen'] | Metrics['budgetExhausted']) =>
  (await counter.get()).values.reduce((sum, entry) => sum + entry.value, 0);

describe('per-user daily token budget (real Redis)', () => {
  const prefix = testPrefix('usage-budget');
  let redis: Redis;
  /** A fresh user per test, named as CallerRef.key names one. */
  const freshUser = () => callerKeys('test key').hash(`user:${randomUUID()}`);

  function budget(tokensPerDay: number, now?: () => number, metrics: Metrics = createMetrics(), client = redis) {
    return createTokenBudget({
      redis: client,
      prefix,
      tokensPerDay,
      maxConcurrent: 2,
      leaseMs: LEASE_MS,
      now,
      metrics,
      tracker: createDegradationTracker('budget', silent, metrics),
    });
  }

  async function granted(target: TokenBudget, userKey: string, tokens: number): Promise<BudgetReservation> {
    const result = await target.reserve(userKey, tokens);
    if (!result.ok) {
      throw new Error(`expected a reservation of ${tokens}, refused: ${JSON.stringify(result)}`);
    }
    return result.reservation;
  }

  beforeAll(async () => {
    redis = createRedisClient({
      url: 'redis://127.0.0.1:6379',
      connectionName: 'usage-budget-test',
      commandTimeoutMs: 2000,
      logger: silent,
    });
    expect(await waitForRedis(redis, 5000)).toBe(true);
  });

  afterAll(async () => {
    await redis.quit();
    await deleteTestPrefix(prefix);
  });

  it('never lets concurrent requests overspend, and counts the real usage when they settle', async () => {
    const metrics = createMetrics();
    const limited = budget(5500, undefined, metrics);
    const userKey = freshUser();
    const results = await Promise.all(Array.from({ length: 20 }, () => limited.reserve(userKey, 1000)));
    const reservations = results.flatMap((result) => (result.ok ? [result.reservation] : []));
    expect(reservations).toHaveLength(5);
    // Only calls in flight hold the room: the refusal says to retry soon, not tomorrow.
    expect(results.find((result) => !result.ok)).toMatchObject({ ok: false, reason: 'in_flight', budget: 5500 });
    expect(await counterValue(metrics.budgetExhausted)).toBe(15);

    await Promise.all(reservations.map((reservation) => limited.settle(reservation, 900)));
    expect(await limited.usage(userKey)).toEqual({ tokensToday: 4500, budget: 5500 });

    const over = await limited.reserve(userKey, 1001);
    expect(over).toMatchObject({ ok: false, reason: 'budget', usedTokens: 4500, heldTokens: 0, budget: 5500 });
    expect((await limited.reserve(userKey, 1000)).ok).toBe(true);
  });

  it('counts exactly what was reported, once; a release counts nothing', async () => {
    const limited = budget(10_000);
    const userKey = freshUser();
    const first = await granted(limited, userKey, 2000);
    await limited.settle(first, 1234);
    await limited.settle(first, 5000);
    await limited.release(first);
    const second = await granted(limited, userKey, 2000);
    await limited.release(second);
    await limited.settle(second, 700);
    expect(await limited.usage(userKey)).toEqual({ tokensToday: 1234, budget: 10_000 });
    // Nothing is held any more: all of the rest is available.
    expect((await limited.reserve(userKey, 10_000 - 1234)).ok).toBe(true);
  });

  it('adds a member to a set of the user with the settlement, and says so', async () => {
    const limited = budget(10_000);
    const userKey = freshUser();
    const listing = { key: `${prefix}listing:{${userKey}}`, member: 'answer-key', ttlSeconds: 600 };
    expect(await limited.settle(await granted(limited, userKey, 100), 100, listing)).toBe(true);
    expect(await redis.smembers(listing.key)).toEqual(['answer-key']);
    expect(await redis.ttl(listing.key)).toBeGreaterThan(590);
    expect(await limited.usage(userKey)).toEqual({ tokensToday: 100, budget: 10_000 });
    // Nothing held (an unlimited budget, no slot): no script ran, so the caller must list it itself.
    const untracked = await granted(budget(0), userKey, 100);
    expect(await budget(0).settle(untracked, 100, { ...listing, member: 'other' })).toBe(false);
    expect(await redis.smembers(listing.key)).toEqual(['answer-key']);
  });

  it('stops counting a leaked reservation after its lease, yet a late settle still counts', async () => {
    const clock = testClock();
    const limited = budget(5000, clock.now);
    const userKey = freshUser();
    const leaked = await granted(limited, userKey, 4000);
    expect(await limited.reserve(userKey, 2000)).toMatchObject({ ok: false, reason: 'in_flight', heldTokens: 4000 });

    clock.advance(LEASE_MS - 1);
    expect((await limited.reserve(userKey, 2000)).ok).toBe(false);
    clock.advance(2);
    const after = await granted(limited, userKey, 2000);

    await limited.settle(leaked, 300);
    await limited.settle(after, 200);
    expect(await limited.usage(userKey)).toEqual({ tokensToday: 500, budget: 5000 });
  });

  it('rolls over at UTC midnight and says how long until then', async () => {
    const nextMidnight = (Math.floor(Date.now() / DAY_MS) + 1) * DAY_MS;
    const clock = testClock(nextMidnight - 1500);
    const limited = budget(1000, clock.now);
    const userKey = freshUser();
    const lateCall = await granted(limited, userKey, 600);
    await limited.settle(await granted(limited, userKey, 400), 400);
    expect(await limited.reserve(userKey, 700)).toMatchObject({ ok: false, reason: 'budget', retryAfterSeconds: 2 });
    clock.advance(1000);
    expect(await limited.reserve(userKey, 700)).toMatchObject({ ok: false, reason: 'budget', retryAfterSeconds: 1 });

    clock.advance(500);
    expect(await limited.usage(userKey)).toEqual({ tokensToday: 0, budget: 1000 });
    // Reserved yesterday, settled today: it counts on the day that admitted it.
    await limited.settle(lateCall, 600);
    expect(await limited.usage(userKey)).toEqual({ tokensToday: 0, budget: 1000 });
    expect((await limited.reserve(userKey, 1000)).ok).toBe(true);
    expect(await budget(1000, () => nextMidnight - 1).usage(userKey)).toEqual({ tokensToday: 1000, budget: 1000 });
  });

  it('keeps each day only a little over a day', async () => {
    const limited = budget(1000);
    const userKey = freshUser();
    await limited.settle(await granted(limited, userKey, 100), 100);
    await granted(limited, userKey, 100);
    const keys = await redis.keys(`${prefix}usage:{${userKey}}:*`);
    expect(keys).toHaveLength(3);
    for (const key of keys) {
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(3_600_000);
      expect(ttl).toBeLessThanOrEqual(DAY_MS + 3_600_000);
    }
  });

  it('is unlimited with a budget of 0, without touching Redis', async () => {
    const metrics = createMetrics();
    const down = createRedisClient({
      url: `redis://127.0.0.1:${await freePort()}`,
      connectionName: 'usage-budget-unlimited',
      commandTimeoutMs: 200,
      logger: silent,
    });
    try {
      const unlimited = budget(0, undefined, metrics, down);
      const result = await unlimited.reserve(freshUser(), 1_000_000);
      expect(result).toMatchObject({ ok: true, reservation: { tracked: false } });
      expect(await unlimited.usage(freshUser())).toEqual({ tokensToday: undefined, budget: 0 });
      expect(await counterValue(metrics.budgetFailOpen)).toBe(0);
      expect(await metrics.redisErrors.get()).toMatchObject({ values: [] });
    } finally {
      down.disconnect();
    }
  });

  it('fails open while Redis is unreachable, warning once for many requests', async () => {
    const metrics = createMetrics();
    const logs = new LogCapture();
    const logger = createLogger({ level: 'info', instanceId: 'usage-test' }, logs);
    const down = createRedisClient({
      url: `redis://127.0.0.1:${await freePort()}`,
      connectionName: 'usage-budget-down',
      commandTimeoutMs: 200,
      logger: silent,
    });
    try {
      const open = createTokenBudget({
        redis: down,
        prefix,
        tokensPerDay: 100,
        maxConcurrent: 2,
        metrics,
        tracker: createDegradationTracker('budget', logger, metrics),
      });
      const userKey = freshUser();
      for (let call = 0; call < 10; call += 1) {
        const result = await open.reserve(userKey, 1000);
        expect(result).toMatchObject({ ok: true, reservation: { tracked: false } });
        if (result.ok) {
          await open.settle(result.reservation, 900);
        }
      }
      expect(await counterValue(metrics.budgetFailOpen)).toBe(10);
      expect(await open.usage(userKey)).toEqual({ tokensToday: undefined, budget: 100 });
      const warnings = logs.lines.map((line) => JSON.parse(line) as { level: string; msg: string });
      expect(warnings).toEqual([expect.objectContaining({ level: 'warn', msg: 'budget: redis failing, degrading' })]);
      // Account deletion must not pretend it deleted anything.
      await expect(open.forget(userKey)).rejects.toThrow();
    } finally {
      down.disconnect();
    }
  });

  it("forgets every key of a user, and nothing of another user's", async () => {
    const clock = testClock();
    const limited = budget(10_000, clock.now);
    const [leaving, staying] = [freshUser(), freshUser()];
    for (const userKey of [leaving, staying]) {
      // Yesterday's keys, still within their grace, then today's: settled, held and leased, and a slot.
      await limited.settle(await granted(limited, userKey, 100), 100);
      await limited.reserve(userKey, 100, { slot: true });
    }
    clock.advance(DAY_MS);
    for (const userKey of [leaving, staying]) {
      await limited.settle(await granted(limited, userKey, 100), 100);
      await limited.reserve(userKey, 100, { slot: true });
    }
    const keysOf = (userKey: string) => redis.keys(`${prefix}usage:{${userKey}}:*`);
    expect(await keysOf(leaving)).toHaveLength(7);
    const before = (await keysOf(staying)).sort();

    const inFlight = await limited.reserve(leaving, 100, { slot: true });
    expect(inFlight).toMatchObject({ ok: true, reservation: { tracked: true, slot: true } });
    await limited.forget(leaving);
    expect(await keysOf(leaving)).toEqual([]);
    // A call in flight during the deletion ends without writing anything back.
    if (inFlight.ok) {
      await limited.settle(inFlight.reservation, 100);
    }
    expect(await keysOf(leaving)).toEqual([]);
    expect((await keysOf(staying)).sort()).toEqual(before);
    expect(await limited.usage(staying)).toEqual({ tokensToday: 100, budget: 10_000 });
  });
});
