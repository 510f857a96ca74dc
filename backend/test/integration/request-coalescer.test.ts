import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisCoalescer, type RequestCoalescer, type StoredResult } from '../../src/llm/request-coalescer.js';
import { createRedisClient, type Redis, waitForRedis } from '../../src/redis/redis-client.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { deletePrefix, testPrefix } from '../helpers/test-backend.js';

const logger = createLogger({ level: 'silent', instanceId: 'coalescer-test' });
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Two "instances": each its own connections and coalescer, one Redis prefix. */
describe('request coalescer (real Redis, two instances)', () => {
  const prefix = testPrefix('coalescer');
  const clients: Redis[] = [];
  const instances: RequestCoalescer[] = [];
  let redis: Redis;

  const client = async (name: string, role: 'request-path' | 'queue') => {
    const connection = createRedisClient({
      url: 'redis://127.0.0.1:6379',
      connectionName: `coalescer-test-${name}`,
      commandTimeoutMs: 2000,
      logger,
      role,
    });
    await waitForRedis(connection, 5000);
    clients.push(connection);
    return connection;
  };

  beforeAll(async () => {
    for (const name of ['a', 'b']) {
      const metrics = createMetrics();
      instances.push(
        createRedisCoalescer({
          redis: await client(name, 'request-path'),
          subscriber: await client(`${name}-sub`, 'queue'),
          prefix,
          waitMs: 5000,
          // Short, so the tests see renewal and expiry quickly.
          lockTtlMs: 400,
          metrics,
          logger,
          tracker: createDegradationTracker('coalescer', logger, metrics),
        }),
      );
    }
    redis = clients[0] as Redis;
    // Let both subscriptions settle before the first leader publishes.
    await pause(100);
  });

  afterAll(async () => {
    await deletePrefix({ redis }, prefix);
    for (const instance of instances) {
      instance.close();
    }
    await Promise.all(clients.map((connection) => connection.quit()));
  });

  /** A stand-in for the response cache: what the leader stores, followers read. */
  function work(key: string, store: Map<string, string>, calls: { count: number }, fail = false, durationMs = 200) {
    return {
      lead: async () => {
        calls.count += 1;
        await pause(durationMs);
        if (fail && calls.count === 1) {
          throw new Error('upstream failed');
        }
        store.set(key, `answer-${calls.count}`);
        return `answer-${calls.count}`;
      },
      follow: async () => store.get(key),
    };
  }

  it('runs identical work once across instances; the others get its result', async () => {
    const store = new Map<string, string>();
    const calls = { count: 0 };
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, index) => {
        const { lead, follow } = work('same-question', store, calls);
        return (instances[index % 2] as RequestCoalescer).run('same-question', lead, follow);
      }),
    );
    expect(calls.count).toBe(1);
    expect(results.filter((result) => result.coalesced)).toHaveLength(9);
    expect(new Set(results.map((result) => result.value))).toEqual(new Set(['answer-1']));
  });

  /** A result stored in Redis under the lock's hash tag: read with the lock, written with the unlock. */
  function storedIn(key: string, seen: { found: (string | null)[] }): StoredResult<string> {
    return {
      redisKey: `${prefix}stored:{${key}}`,
      found: (raw) => {
        seen.found.push(raw);
        return raw ?? undefined;
      },
      store: (value) => ({ raw: value, ttlSeconds: 60 }),
      failed: () => undefined,
      succeeded: () => undefined,
    };
  }

  it("stores the leader's result with its unlock; the next run finds it with its claim and does no work", async () => {
    const seen = { found: [] as (string | null)[] };
    const first = await (instances[0] as RequestCoalescer).run(
      'stored-question',
      async () => 'stored-answer',
      async () => undefined,
      storedIn('stored-question', seen),
    );
    expect(first).toEqual({ value: 'stored-answer', coalesced: false });
    expect(await redis.get(`${prefix}stored:{stored-question}`)).toBe('stored-answer');
    expect(await redis.exists(`${prefix}coalesce:lock:{stored-question}`)).toBe(0);

    let led = false;
    const second = await (instances[1] as RequestCoalescer).run(
      'stored-question',
      async () => {
        led = true;
        return 'a second call';
      },
      async () => undefined,
      storedIn('stored-question', seen),
    );
    expect(second).toEqual({ value: 'stored-answer', coalesced: false });
    expect(led).toBe(false);
    // Each run read the stored result once: absent, then present.
    expect(seen.found).toEqual([null, 'stored-answer']);
  });

  it('lets each follower do the work itself when the leader fails', async () => {
    const store = new Map<string, string>();
    const calls = { count: 0 };
    const outcomes = await Promise.allSettled(
      Array.from({ length: 4 }, (_, index) => {
        const { lead, follow } = work('failing-question', store, calls, true);
        return (instances[index % 2] as RequestCoalescer).run('failing-question', lead, follow);
      }),
    );
    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(3);
    expect(calls.count).toBe(4);
  });

  it('stops waiting for a leader that died holding the lock once the lock expires', async () => {
    await redis.set(`${prefix}coalesce:lock:{orphan}`, 'dead-leader', 'PX', 300);
    const calls = { count: 0 };
    const { lead, follow } = work('orphan', new Map(), calls);
    const result = await (instances[1] as RequestCoalescer).run('orphan', lead, follow);
    expect(result).toEqual({ value: 'answer-1', coalesced: false });
    expect(calls.count).toBe(1);
  });

  it('keeps the lock of a leader that works longer than the lock lifetime', async () => {
    const store = new Map<string, string>();
    const calls = { count: 0 };
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, index) => {
        const { lead, follow } = work('slow-question', store, calls, false, 1500);
        return (instances[index % 2] as RequestCoalescer).run('slow-question', lead, follow);
      }),
    );
    expect(calls.count).toBe(1);
    expect(results.filter((result) => result.coalesced)).toHaveLength(5);
  });

  it('lets one follower take over from a dead leader; the others coalesce with it', async () => {
    await redis.set(`${prefix}coalesce:lock:{taken-over}`, 'dead-leader', 'PX', 300);
    const store = new Map<string, string>();
    const calls = { count: 0 };
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, index) => {
        const { lead, follow } = work('taken-over', store, calls);
        return (instances[index % 2] as RequestCoalescer).run('taken-over', lead, follow);
      }),
    );
    expect(calls.count).toBe(1);
    expect(results.filter((result) => result.coalesced)).toHaveLength(5);
  });
});
