import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callerKeys } from '../../src/redis/caller-key.js';
import { createRedisClient, type Redis, waitForRedis } from '../../src/redis/redis-client.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import {
  type ConcurrencyLease,
  createUserConcurrency,
  type UserConcurrency,
} from '../../src/usage/user-concurrency.js';
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

  /** One instance's limiter, on its own connection. */
  async function limiter(now?: () => number): Promise<UserConcurrency> {
    return createUserConcurrency({
      redis: await client(`usage-concurrency-${clients.length}`),
      prefix,
      maxConcurrent: 2,
      leaseMs: LEASE_MS,
      now,
      tracker: createDegradationTracker('user-concurrency', silent, createMetrics()),
    });
  }

  async function acquired(target: UserConcurrency, userKey: string): Promise<ConcurrencyLease> {
    const lease = await target.acquire(userKey);
    if (!lease) {
      throw new Error('expected a lease');
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
    expect(await limit.acquire(userKey)).toBeUndefined();
    // Another user is not held back by this one.
    expect(await limit.acquire(freshUser())).toBeDefined();

    await limit.release(first);
    await limit.release(first);
    expect(await limit.acquire(userKey)).toBeDefined();
    expect(await limit.acquire(userKey)).toBeUndefined();
  });

  it('grants exactly the maximum to calls racing from two instances', async () => {
    const [one, two] = [await limiter(), await limiter()];
    const userKey = freshUser();
    const leases = await Promise.all(
      Array.from({ length: 10 }, (_, index) => (index % 2 === 0 ? one : two).acquire(userKey)),
    );
    const granted = leases.filter((lease) => lease !== undefined);
    expect(granted).toHaveLength(2);

    // A slot released on one instance is free for the other.
    await one.release(granted[0] as ConcurrencyLease);
    expect(await two.acquire(userKey)).toBeDefined();
    expect(await one.acquire(userKey)).toBeUndefined();
  });

  it('frees the slot of a leaked lease (its instance died) when the lease lapses', async () => {
    let current = Date.now();
    const limit = await limiter(() => current);
    const userKey = freshUser();
    await acquired(limit, userKey);
    await acquired(limit, userKey);
    current += LEASE_MS - 1;
    expect(await limit.acquire(userKey)).toBeUndefined();
    current += 2;
    expect(await limit.acquire(userKey)).toBeDefined();
    expect(await limit.acquire(userKey)).toBeDefined();
    expect(await limit.acquire(userKey)).toBeUndefined();
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
      const open = createUserConcurrency({
        redis: down,
        prefix,
        maxConcurrent: 1,
        tracker: createDegradationTracker('user-concurrency', logger, createMetrics()),
      });
      const userKey = freshUser();
      for (let call = 0; call < 5; call += 1) {
        const lease = await open.acquire(userKey);
        expect(lease).toMatchObject({ tracked: false });
        await open.release(lease as ConcurrencyLease);
      }
      expect(logs.lines).toHaveLength(1);
      expect(JSON.parse(logs.lines[0] as string)).toMatchObject({ level: 'warn', component: 'user-concurrency' });
    } finally {
      down.disconnect();
    }
  });
});
