import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisResponseCache } from '../../src/cache/response-cache.js';
import { createRedisClient, type Redis, waitForRedis } from '../../src/redis/redis-client.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { deleteTestPrefix, testPrefix } from '../helpers/test-backend.js';

const silent = createLogger({ level: 'silent', instanceId: 'cache-owner-test' });
const answer = (response: string) => ({
  response,
  model: 'm',
  provider: 'groq',
  usage: { promptTokens: 1, completionTokens: 1 },
  createdAt: 0,
});

describe("an owner's index of cached answers (real Redis)", () => {
  const prefix = testPrefix('cache-owner');
  let redis: Redis;

  beforeAll(async () => {
    redis = createRedisClient({
      url: 'redis://127.0.0.1:6379',
      connectionName: 'cache-owner-test',
      commandTimeoutMs: 2000,
      logger: silent,
    });
    expect(await waitForRedis(redis, 5000)).toBe(true);
  });

  afterAll(async () => {
    await redis.quit();
    await deleteTestPrefix(prefix);
  });

  it('is tagged by the owner, and finds answers listed under the untagged name of earlier releases', async () => {
    const metrics = createMetrics();
    const cache = createRedisResponseCache({
      redis,
      prefix,
      ttlSeconds: 600,
      metrics,
      stats: { recordCacheLookup: () => undefined },
      tracker: createDegradationTracker('cache', silent, metrics),
    });
    // What the budget's settlement writes: a key sharing the owner's hash tag.
    expect(cache.listing('owner1', 'k-new')).toEqual({
      key: `${prefix}cache:owner:{owner1}`,
      member: 'k-new',
      ttlSeconds: 600,
    });
    await cache.set('k-new', answer('new'), 'owner1');
    await redis.sadd(`${prefix}cache:owner:owner1`, 'k-old');
    await cache.set('k-old', answer('old'));
    await cache.set('k-theirs', answer('theirs'), 'owner2');

    expect((await cache.owned('owner1')).map(({ response }) => response).sort()).toEqual(['new', 'old']);
    await cache.forgetOwner('owner1');
    expect(await cache.owned('owner1')).toEqual([]);
    expect(await redis.exists(`${prefix}cache:owner:{owner1}`, `${prefix}cache:owner:owner1`)).toBe(0);
    expect(await cache.get(['k-new', 'k-old'])).toBeUndefined();
    expect((await cache.get('k-theirs'))?.response).toBe('theirs');
  });
});
