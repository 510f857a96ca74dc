import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/backend-process.js';
import { httpFrom } from '../helpers/http-from.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { startTestBackend, type TestBackend } from '../helpers/test-backend.js';

describe('cluster stats when Redis goes away', () => {
  let redis: RedisServer;
  let backend: TestBackend;

  beforeAll(async () => {
    redis = await startRedisServer();
    backend = await startTestBackend({ REDIS_URL: redis.url, LOG_LEVEL: 'info' });
    expect((await httpFrom(`${backend.url}/api/chat`, { body: { message: 'Where do I begin?' } })).status).toBe(200);
    expect((await httpFrom(`${backend.url}/dashboard`)).status).toBe(200);
    await redis.kill();
  });

  afterAll(async () => {
    await backend?.close();
    await redis?.kill();
  });

  const degradedLines = () => backend.logs.lines.filter((line) => line.includes('cluster-stats: redis failing'));

  it('refuses the stats pages with 503 rather than showing zeros; requests still succeed', async () => {
    for (let index = 0; index < 5; index += 1) {
      expect((await httpFrom(`${backend.url}/api/chat`, { body: { message: 'Where do I begin?' } })).status).toBe(200);
    }
    // The snapshot read before the outage may still be shared for up to a second.
    await waitFor(async () => (await httpFrom(`${backend.url}/dashboard`)).status === 503, 5000, 'stats refused');
    for (const path of ['/dashboard', '/api/chat/stats']) {
      const answer = await httpFrom(`${backend.url}${path}`);
      expect(answer.status).toBe(503);
      expect(answer.headers['retry-after']).toBeDefined();
      expect(answer.json<{ error: { code: string } }>().error.code).toBe('service_unavailable');
    }
  });

  it('reports focus_active_users as unknown (NaN) and counts the Redis errors', async () => {
    const text = (await httpFrom(`${backend.url}/metrics`)).text;
    // prom-client writes NaN as "Nan", which Prometheus parses as NaN.
    expect(text).toMatch(/^focus_active_users Nan$/m);
    const errors = /^focus_redis_errors_total\{component="cluster-stats"\} (\d+)$/m.exec(text);
    expect(Number(errors?.[1])).toBeGreaterThanOrEqual(2);
  });

  it('logs the outage once, however many requests met it, and its end once', async () => {
    expect(degradedLines()).toHaveLength(1);
    redis = await startRedisServer(redis.port);
    await waitFor(async () => (await httpFrom(`${backend.url}/dashboard`)).status === 200, 15_000, 'stats back');
    expect(degradedLines()).toHaveLength(1);
    expect(backend.logs.lines.filter((line) => line.includes('cluster-stats: redis back'))).toHaveLength(1);
  });
});
