import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpFrom } from '../helpers/http-from.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { startTestBackend, type TestBackend } from '../helpers/test-backend.js';

/** Calls of one command on this private Redis (its own server, so no other test's traffic counts). */
async function commandCalls(redis: Redis, command: string): Promise<number> {
  const info = await redis.info('commandstats');
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
}

/**
 * A stats page sums 60 per-second hashes (61 Redis commands): pages asked for in
 * a burst must share one read, so polling them cannot multiply that cost.
 */
describe('the cost of the stats pages', () => {
  let redis: RedisServer;
  let client: Redis;
  let backend: TestBackend;

  beforeAll(async () => {
    redis = await startRedisServer();
    client = new Redis(redis.url);
    backend = await startTestBackend({ REDIS_URL: redis.url, LOG_LEVEL: 'warn' });
    expect((await httpFrom(`${backend.url}/api/chat`, { body: { message: 'Where do I begin?' } })).status).toBe(200);
  });

  afterAll(async () => {
    await backend?.close();
    client?.disconnect();
    await redis?.kill();
  });

  it('answers a burst of 20 pages from one or two reads of the window, not 20', async () => {
    const before = await commandCalls(client, 'hgetall');
    const pages = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        httpFrom(`${backend.url}${index % 2 === 0 ? '/dashboard' : '/api/chat/stats'}`),
      ),
    );
    expect(pages.map((page) => page.status)).toEqual(Array(20).fill(200));
    const dashboards = pages.filter((_, index) => index % 2 === 0).map((page) => page.json<{ activeUsers: number }>());
    expect(dashboards.every((body) => body.activeUsers === 1)).toBe(true);
    expect((await commandCalls(client, 'hgetall')) - before).toBeLessThanOrEqual(2 * 60);
  });
});
