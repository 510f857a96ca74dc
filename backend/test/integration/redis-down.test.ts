import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { freePort, waitFor } from '../helpers/backend-process.js';
import { type ChatBody, type ErrorBody, postChat, request } from '../helpers/http-client.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { startTestBackend, type TestBackend } from '../helpers/test-backend.js';

interface Readiness {
  status: string;
  checks: { redis: string; draining: boolean };
}

async function readiness(backend: TestBackend) {
  const response = await request(`${backend.url}/readyz`);
  return { status: response.status, body: response.json as Readiness };
}

/** Log lines whose msg matches, so the test can count how often an event was logged. */
function logged(backend: TestBackend, pattern: RegExp): string[] {
  return backend.logs.lines.filter((line) => pattern.test((JSON.parse(line) as { msg: string }).msg));
}

/** Each Redis connection of the instance (api, queue…) reports a change once, the api one included. */
function expectOncePerConnection(lines: string[]) {
  const connections = lines.map((line) => (JSON.parse(line) as { connection: string }).connection);
  expect(connections.length).toBeGreaterThan(0);
  expect(new Set(connections).size).toBe(connections.length);
  expect(connections.some((name) => name.endsWith(':api'))).toBe(true);
}

/**
 * A private redis-server, killed mid-test: chat keeps answering (cache miss,
 * in-memory limiter), readiness says so, and the outage is logged once.
 */
describe('Redis stopped', () => {
  let redis: RedisServer;
  let simulator: GroqSimulator;
  let backend: TestBackend;

  beforeAll(async () => {
    redis = await startRedisServer();
    simulator = await startGroqSimulator({ latencyMs: 5 });
    backend = await startTestBackend({
      REDIS_URL: redis.url,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
      MAX_REQUESTS_PER_MINUTE: '3',
    });
  });

  afterAll(async () => {
    await backend.close();
    await simulator.close();
    await redis.kill();
  });

  it('serves from the shared cache while Redis is up', async () => {
    expect(await readiness(backend)).toMatchObject({
      status: 200,
      body: { status: 'ready', checks: { redis: 'up', draining: false } },
    });
    expect((await postChat(backend.url, { message: 'Where do I start?' }, { ip: '192.0.2.1' })).json).toMatchObject({
      cached: false,
    });
    expect((await postChat(backend.url, { message: 'Where do I start?' }, { ip: '192.0.2.1' })).json).toMatchObject({
      cached: true,
    });
  });

  it('keeps answering when Redis dies: a cache miss, the in-memory limiter, readiness "degraded"', async () => {
    await redis.kill();
    await waitFor(async () => (await readiness(backend)).body.checks.redis === 'down', 5000, 'redis down');
    expect(await readiness(backend)).toMatchObject({
      status: 200,
      body: { status: 'degraded', checks: { redis: 'down', draining: false } },
    });

    const callsBefore = simulator.stats().requests;
    const ip = '192.0.2.2';
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      const response = await postChat(backend.url, { message: 'Where do I start?' }, { ip });
      expect(response.status, `attempt ${attempt}`).toBe(200);
      expect((response.json as ChatBody).cached).toBe(false);
      expect(response.headers.get('ratelimit-remaining')).toBe(String(3 - attempt));
      // ioredis fails fast instead of queueing the command until it times out.
      expect(response.elapsedMs).toBeLessThan(1000);
    }
    expect(simulator.stats().requests - callsBefore).toBe(3);

    const refused = await postChat(backend.url, { message: 'Where do I start?' }, { ip });
    expect(refused.status).toBe(429);
    expect((refused.json as ErrorBody).error.code).toBe('rate_limited');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    // Another caller has its own in-memory budget.
    expect((await postChat(backend.url, { message: 'Where do I start?' }, { ip: '192.0.2.3' })).status).toBe(200);
  });

  it('logs the outage once per component, not once per request', async () => {
    expectOncePerConnection(logged(backend, /redis connection lost/));
    expect(logged(backend, /^rate-limit: redis failing/)).toHaveLength(1);
    expect(logged(backend, /^response-cache: redis failing/)).toHaveLength(1);
    const warnLines = () =>
      backend.logs.lines
        .map((line) => JSON.parse(line) as { level: string; component?: string })
        .filter((line) => line.level === 'warn');
    const warnings = () => warnLines().length;
    // Off the request path, the stats flush and the queue's reconnects meet the
    // outage on their own timers: their one warning each must be in before counting.
    await waitFor(
      async () => {
        const components = new Set(warnLines().map((line) => line.component));
        return ['cluster-stats', 'queue', 'queue-worker'].every((component) => components.has(component));
      },
      5000,
      'the background components to log the outage',
    );
    const before = warnings();
    for (let index = 0; index < 5; index += 1) {
      expect(
        (await postChat(backend.url, { message: `Still down? ${index}` }, { ip: `192.0.2.${20 + index}` })).status,
      ).toBe(200);
    }
    expect(warnings()).toBe(before);
  });

  it('recovers when Redis comes back', async () => {
    redis = await startRedisServer(redis.port);
    await waitFor(async () => (await readiness(backend)).body.checks.redis === 'up', 10_000, 'redis back');
    const ip = '192.0.2.4';
    expect((await postChat(backend.url, { message: 'Back again?' }, { ip })).json).toMatchObject({ cached: false });
    expect((await postChat(backend.url, { message: 'Back again?' }, { ip })).json).toMatchObject({ cached: true });
    expectOncePerConnection(logged(backend, /redis connection restored/));
    expect(logged(backend, /^rate-limit: redis back/)).toHaveLength(1);
    expect(logged(backend, /^response-cache: redis back/)).toHaveLength(1);
  });
});

describe('Redis down from the start', () => {
  let simulator: GroqSimulator;
  let backend: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 1 });
    // Nothing listens there: the instance (API and queue worker) must still start, serve, and stop.
    backend = await startTestBackend({
      QUEUE_SHUTDOWN_GRACE_MS: '200',
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'test-key',
    });
  });

  afterAll(async () => {
    await simulator.close();
  });

  it('starts, answers and reports degraded readiness', async () => {
    expect(logged(backend, /^redis not reachable at start/)).toHaveLength(1);
    expect((await readiness(backend)).body).toMatchObject({ status: 'degraded', checks: { redis: 'down' } });
    const response = await postChat(backend.url, { message: 'Is anyone there?' });
    expect(response.status).toBe(200);
    expect((response.json as ChatBody).cached).toBe(false);
  });

  it('shuts down although its queue worker never reached Redis', async () => {
    // BullMQ's own close waits for a reconnect; ours gives up after a bound and disconnects.
    await backend.close();
    expect(backend.runtime.lifecycle.draining).toBe(true);
    expect(backend.runtime.server.listening).toBe(false);
  });
});
