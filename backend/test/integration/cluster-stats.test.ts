import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpFrom } from '../helpers/http-from.js';
import { deletePrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';

const ADMIN_TOKEN = 'test-admin-token-0123456789';
const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };
/** Seven callers, told apart by their real source address. */
const CALLERS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8'];

interface StatsBody {
  activeUsers: number;
  cacheStats: { hits: number; misses: number; hitRate: number };
  queue: { waiting: number; active: number };
  uptime: number;
  instance: string;
}

interface DashboardBody {
  activeUsers: number;
  requestsPerMinute: number;
  avgResponseTime: number;
  p95ResponseTime: number;
  cacheHitRate: number;
  errorRate: number;
  serverErrorRate: number;
  upstream: { tokensLastMinute: number; callsLastMinute: number };
  instance: string;
}

describe('cluster-wide stats over three instances on one Redis', () => {
  const prefix = testPrefix('cluster-stats');
  let backends: TestBackend[] = [];

  beforeAll(async () => {
    backends = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        startTestBackend({ REDIS_PREFIX: prefix, INSTANCE_ID: `stats-${name}`, ADMIN_TOKEN, LOG_LEVEL: 'warn' }),
      ),
    );
    // Each caller asks the same question twice, on two different instances,
    // and sends one invalid request: 14 cache lookups (1 miss), 21 requests, 7 errors.
    for (const [index, address] of CALLERS.entries()) {
      for (const offset of [0, 1]) {
        const backend = backends[(index + offset) % backends.length] as TestBackend;
        const answer = await httpFrom(`${backend.url}/api/chat`, {
          localAddress: address,
          body: { message: 'How do I start a task I keep avoiding?' },
        });
        expect(answer.status).toBe(200);
      }
      const invalid = await httpFrom(`${(backends[index % 3] as TestBackend).url}/api/chat`, {
        localAddress: address,
        body: { message: '' },
      });
      expect(invalid.status).toBe(400);
    }
  });

  afterAll(async () => {
    const first = backends[0];
    if (first) {
      await deletePrefix(first.runtime, prefix);
    }
    await Promise.all(backends.map((backend) => backend.close()));
  });

  /** Polls until the fire-and-forget writes of the last requests have landed. */
  async function settledDashboard(backend: TestBackend, requests = 21): Promise<DashboardBody> {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const body = (await httpFrom(`${backend.url}/dashboard`, { headers: auth })).json<DashboardBody>();
      if (body.requestsPerMinute >= requests) {
        return body;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`the request count never reached ${requests}`);
  }

  it('gives the same figures from every instance: 7 active users, the cache and the request rate', async () => {
    await settledDashboard(backends[0] as TestBackend);
    const stats = await Promise.all(
      backends.map(async (backend) =>
        (await httpFrom(`${backend.url}/api/chat/stats`, { headers: auth })).json<StatsBody>(),
      ),
    );
    const dashboards = await Promise.all(
      backends.map(async (backend) =>
        (await httpFrom(`${backend.url}/dashboard`, { headers: auth })).json<DashboardBody>(),
      ),
    );

    expect(stats.map((body) => body.instance)).toEqual(['stats-a', 'stats-b', 'stats-c']);
    for (const body of stats) {
      expect(body.activeUsers).toBe(7);
      expect(body.cacheStats).toEqual({ hits: 13, misses: 1, hitRate: 0.9286 });
      expect(body.queue).toMatchObject({ waiting: 0, active: 0 });
      expect(body.uptime).toBeGreaterThanOrEqual(0);
    }
    const { instance: _first, ...reference } = dashboards[0] as DashboardBody;
    expect(reference.activeUsers).toBe(7);
    expect(reference.requestsPerMinute).toBe(21);
    expect(reference.cacheHitRate).toBe(0.9286);
    expect(reference.errorRate).toBe(0.3333);
    expect(reference.serverErrorRate).toBe(0);
    expect(reference.avgResponseTime).toBeGreaterThan(0);
    expect(reference.p95ResponseTime).toBeGreaterThan(0);
    expect(reference.upstream.callsLastMinute).toBe(1);
    expect(reference.upstream.tokensLastMinute).toBeGreaterThan(0);
    for (const dashboard of dashboards.slice(1)) {
      const { instance: _other, ...figures } = dashboard;
      expect(figures).toEqual(reference);
    }
  });

  it('reports the cluster-wide active users on /metrics of every instance', async () => {
    for (const backend of backends) {
      const text = (await httpFrom(`${backend.url}/metrics`)).text;
      expect(text).toMatch(/^focus_active_users 7$/m);
    }
  });

  it('refuses the stats pages without the admin token', async () => {
    const backend = backends[2] as TestBackend;
    for (const path of ['/api/chat/stats', '/dashboard']) {
      const missing = await httpFrom(`${backend.url}${path}`);
      expect(missing.status).toBe(401);
      expect(missing.headers['www-authenticate']).toBe('Bearer');
      expect(missing.json<{ error: { code: string } }>().error.code).toBe('unauthorized');
      const wrong = await httpFrom(`${backend.url}${path}`, { headers: { Authorization: 'Bearer not-the-token' } });
      expect(wrong.status).toBe(401);
      expect(wrong.text).not.toContain(ADMIN_TOKEN);
    }
  });

  it('does not count looking at the stats, health checks or scrapes as traffic', async () => {
    const backend = backends[1] as TestBackend;
    for (const path of ['/healthz', '/readyz', '/metrics', '/api/chat/stats', '/dashboard']) {
      await httpFrom(`${backend.url}${path}`, { headers: auth, localAddress: '127.0.0.9' });
    }
    // A counted request from a new caller after them: once it shows, they would have too.
    await httpFrom(`${backend.url}/api/chat`, { localAddress: '127.0.0.10', body: {} });
    const dashboard = await settledDashboard(backend, 22);
    expect(dashboard.requestsPerMinute).toBe(22);
    expect(dashboard.activeUsers).toBe(8);
  });

  it('serves the stats pages on their exact paths only (the proxy hides those, not variants)', async () => {
    // Last: these 404s are traffic, and would change the counts the tests above expect.
    const backend = backends[0] as TestBackend;
    for (const path of ['/api/chat/stats/', '/API/chat/stats/', '/dashboard/']) {
      const answer = await httpFrom(`${backend.url}${path}`, { headers: auth });
      expect(answer.status, path).toBe(404);
      expect(answer.json<{ error: { code: string } }>().error.code, path).toBe('not_found');
    }
  });
});
