import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQuotaGovernor, type QuotaGovernor, type QuotaLimits } from '../../src/llm/quota-governor.js';
import { createRedisClient, type Redis, waitForRedis } from '../../src/redis/redis-client.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics.js';
import { freePort } from '../helpers/backend-process.js';
import { deletePrefix, testPrefix } from '../helpers/test-backend.js';

const logger = createLogger({ level: 'silent', instanceId: 'quota-test' });
const NOW = () => Date.now();
const UNLIMITED: QuotaLimits = { requestsPerMinute: 0, tokensPerMinute: 0, requestsPerDay: 0, tokensPerDay: 0 };

describe('quota governor (real Redis)', () => {
  let redis: Redis;
  const prefixes: string[] = [];

  /** A governor as one instance would build it; same prefix + provider = same shared budget. */
  function governor(prefix: string, limits: Partial<QuotaLimits>, client = redis, metrics: Metrics = createMetrics()) {
    return createQuotaGovernor({
      redis: client,
      prefix,
      provider: 'groq',
      limits: { ...UNLIMITED, ...limits },
      callTimeoutMs: 10_000,
      metrics,
      logger,
      tracker: createDegradationTracker('quota-groq', logger, metrics),
    });
  }
  const fresh = (name: string) => {
    const prefix = testPrefix(`quota-${name}`);
    prefixes.push(prefix);
    return prefix;
  };
  const reserveNow = (quota: QuotaGovernor, tokens: number) => quota.reserve(tokens, NOW());

  beforeAll(async () => {
    redis = createRedisClient({
      url: 'redis://127.0.0.1:6379',
      connectionName: 'quota-test',
      commandTimeoutMs: 2000,
      logger,
    });
    expect(await waitForRedis(redis, 5000)).toBe(true);
  });

  afterAll(async () => {
    for (const prefix of prefixes) {
      await deletePrefix({ redis }, prefix);
    }
    await redis.quit();
  });

  it('grants exactly the requests per minute across instances racing for them', async () => {
    const prefix = fresh('rpm');
    const instances = [governor(prefix, { requestsPerMinute: 30 }), governor(prefix, { requestsPerMinute: 30 })];
    const results = await Promise.all(
      Array.from({ length: 45 }, (_, index) => reserveNow(instances[index % 2] as QuotaGovernor, 10)),
    );
    expect(results.filter((result) => result.granted)).toHaveLength(30);
    const refused = results.find((result) => !result.granted);
    // Honest: the oldest reservation leaves the (61 s) window in about a minute.
    expect(refused).toMatchObject({ granted: false, reason: 'requests' });
    expect(refused?.granted === false && refused.retryAfterMs).toBeGreaterThan(55_000);
    expect(refused?.granted === false && refused.retryAfterMs).toBeLessThanOrEqual(61_000);
  });

  it('holds estimates while calls fly, then frees what the real usage did not need', async () => {
    const quota = governor(fresh('tpm'), { tokensPerMinute: 1000 });
    const first = await reserveNow(quota, 400);
    const second = await reserveNow(quota, 400);
    expect([first.granted, second.granted]).toEqual([true, true]);

    const blocked = await reserveNow(quota, 400);
    // Blocked only by estimates in flight: "soon", not a minute.
    expect(blocked).toMatchObject({ granted: false, reason: 'tokens' });
    expect(blocked.granted === false && blocked.retryAfterMs).toBeLessThan(1000);

    for (const reservation of [first, second]) {
      await quota.settle(reservation.granted ? reservation.id : undefined, { kind: 'counted', tokens: 60 });
    }
    expect((await reserveNow(quota, 400)).granted).toBe(true);
  });

  it('counts a call that outlived the window: the upstream counts it when it completes', async () => {
    const prefix = fresh('long-call');
    const quota = governor(prefix, { tokensPerMinute: 1000 });
    const call = await reserveNow(quota, 400);
    // What eviction does to a reservation older than the window while its call still runs
    // (a timeout above a minute, e.g. a slow self-hosted fallback).
    const base = `${prefix}quota:{groq}:`;
    await redis.zrem(`${base}log`, call.granted ? (call.id as string) : '');
    await redis.hdel(`${base}tokens`, call.granted ? (call.id as string) : '');
    await redis.decrby(`${base}sum`, 400);
    await quota.settle(call.granted ? call.id : undefined, { kind: 'counted', tokens: 800 });
    expect(await reserveNow(quota, 300)).toMatchObject({ granted: false, reason: 'tokens' });
    expect(await redis.pttl(`${base}sum`)).toBeGreaterThan(0);
  });

  it('waits for room when it comes within the deadline, and refuses at once when it does not', async () => {
    const quota = governor(fresh('wait'), { tokensPerMinute: 500 });
    const holder = await reserveNow(quota, 500);
    const waiting = quota.reserve(300, NOW() + 5000);
    await quota.settle(holder.granted ? holder.id : undefined, { kind: 'counted', tokens: 100 });
    const result = await waiting;
    expect(result.granted).toBe(true);
    expect(result.waitedMs).toBeGreaterThan(0);
    await quota.settle(result.granted ? result.id : undefined, { kind: 'counted', tokens: 300 });

    // Now 400 of 500 are used by settled calls that stay for a minute: no point waiting 5 s.
    const refused = await quota.reserve(300, NOW() + 5000);
    expect(refused).toMatchObject({ granted: false, reason: 'tokens', waitedMs: expect.any(Number) });
    expect(refused.waitedMs).toBeLessThan(1000);
  });

  it('follows the upstream headers: a lower real limit and tokens someone else spent', async () => {
    const metrics = createMetrics();
    const quota = governor(fresh('headers'), { tokensPerMinute: 6000 }, redis, metrics);
    const call = await reserveNow(quota, 300);
    // The key really allows 3000/min and only 1000 are left: another client spent ~1900.
    await quota.settle(call.granted ? call.id : undefined, {
      kind: 'counted',
      tokens: 100,
      limits: { limitTokens: 3000, remainingTokens: 1000, resetTokensMs: 30_000 },
    });
    const next = await reserveNow(quota, 900);
    expect(next).toMatchObject({ granted: true });
    const refused = await reserveNow(quota, 300);
    expect(refused).toMatchObject({ granted: false, reason: 'tokens' });
    expect((await metrics.registry.getSingleMetric('focus_quota_limit_tokens')?.get())?.values[0]?.value).toBe(3000);
  });

  it("follows the upstream's day headers: a lower requests-per-day limit and requests someone else made", async () => {
    const quota = governor(fresh('day-headers'), { requestsPerDay: 100 });
    const call = await reserveNow(quota, 10);
    // The key really allows 5 a day, 2 are left: 3 used today, ours and 2 of another client's.
    await quota.settle(call.granted ? call.id : undefined, {
      kind: 'counted',
      tokens: 10,
      limits: { limitRequests: 5, remainingRequests: 2 },
    });
    for (let index = 0; index < 2; index += 1) {
      expect(await reserveNow(quota, 10)).toMatchObject({ granted: true });
    }
    expect(await reserveNow(quota, 10)).toMatchObject({ granted: false, reason: 'day_requests' });
  });

  it('runs a call larger than a learned minute limit alone in an empty window, not never', async () => {
    const quota = governor(fresh('learned-cap'), { tokensPerMinute: 6000 });
    const call = await reserveNow(quota, 300);
    await quota.settle(call.granted ? call.id : undefined, {
      kind: 'counted',
      tokens: 100,
      limits: { limitTokens: 3000, remainingTokens: 2900, resetTokensMs: 1000 },
    });
    // A long conversation: estimated above the key's real 3000/min. Room comes when the
    // window empties (about a minute), so it is refused at once with that honest time,
    // instead of polling Redis every millisecond until the deadline.
    const large = await quota.reserve(4500, NOW() + 1500);
    expect(large).toMatchObject({ granted: false, reason: 'tokens' });
    expect(large.waitedMs).toBeLessThan(500);
    expect(large.granted === false && large.retryAfterMs).toBeGreaterThan(55_000);

    const empty = fresh('learned-cap-empty');
    await redis.set(`${empty}quota:{groq}:learned:tpm`, 3000, 'PX', 60_000);
    expect(await reserveNow(governor(empty, { tokensPerMinute: 6000 }), 4500)).toMatchObject({ granted: true });
  });

  it('pauses every instance after a 429, and learns a lower requests limit when tokens were not the cause', async () => {
    const prefix = fresh('pause');
    const [one, two] = [governor(prefix, { requestsPerMinute: 30 }), governor(prefix, { requestsPerMinute: 30 })];
    for (let index = 0; index < 3; index += 1) {
      const reservation = await reserveNow(one, 50);
      await one.settle(reservation.granted ? reservation.id : undefined, { kind: 'counted', tokens: 50 });
    }
    const fourth = await reserveNow(one, 50);
    await one.settle(fourth.granted ? fourth.id : undefined, {
      kind: 'refused',
      tokens: 50,
      retryAfterMs: 20_000,
      limits: { remainingTokens: 5000 },
    });
    const paused = await reserveNow(two, 50);
    expect(paused).toMatchObject({ granted: false, reason: 'paused' });
    expect(paused.granted === false && paused.retryAfterMs).toBeGreaterThan(15_000);

    const learning = governor(fresh('learn'), { requestsPerMinute: 30 });
    for (let index = 0; index < 3; index += 1) {
      const reservation = await reserveNow(learning, 50);
      await learning.settle(reservation.granted ? reservation.id : undefined, { kind: 'counted', tokens: 50 });
    }
    const refusedByUpstream = await reserveNow(learning, 50);
    // A 1 ms pause, so that what remains is the learned limit: the 3 calls the upstream accepted.
    await learning.settle(refusedByUpstream.granted ? refusedByUpstream.id : undefined, {
      kind: 'refused',
      tokens: 50,
      retryAfterMs: 1,
      limits: { remainingTokens: 5000 },
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(await reserveNow(learning, 50)).toMatchObject({ granted: false, reason: 'requests' });
  });

  it('keeps the daily budgets, and refuses until the next UTC day', async () => {
    const quota = governor(fresh('day'), { requestsPerDay: 2 });
    expect((await reserveNow(quota, 10)).granted).toBe(true);
    expect((await reserveNow(quota, 10)).granted).toBe(true);
    const refused = await reserveNow(quota, 10);
    expect(refused).toMatchObject({ granted: false, reason: 'day_requests' });
    expect(refused.granted === false && refused.retryAfterMs).toBeLessThanOrEqual(86_400_000);
  });

  it('lets calls through while Redis is down, but still honours a 429 it saw', async () => {
    const down = createRedisClient({
      url: `redis://127.0.0.1:${await freePort()}`,
      connectionName: 'quota-test-down',
      commandTimeoutMs: 200,
      logger,
    });
    try {
      const quota = governor('unused:', { requestsPerMinute: 1 }, down);
      const first = await reserveNow(quota, 10);
      expect(first).toMatchObject({ granted: true, id: undefined });
      await quota.settle(undefined, { kind: 'refused', tokens: 10, retryAfterMs: 30_000 });
      expect(await reserveNow(quota, 10)).toMatchObject({ granted: false, reason: 'paused' });
    } finally {
      down.disconnect();
    }
  });
});
