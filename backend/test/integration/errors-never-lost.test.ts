import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { AppState } from '../../src/http/app-state.js';
import { errorHandler } from '../../src/http/error-handler.js';
import { requestContext } from '../../src/http/request-context.js';
import { callerKeys } from '../../src/redis/caller-key.js';
import { RedisUnavailableError } from '../../src/redis/redis-unavailable.js';
import { statsRoutes } from '../../src/routes/stats-routes.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import type { ClusterStats } from '../../src/telemetry/cluster-stats.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { request } from '../helpers/http-client.js';
import { deleteTestPrefix, LogCapture, testPrefix } from '../helpers/test-backend.js';

/** Errors that escape the error middleware are logged with their request id, and bugs are not passed off as outages. */
describe('errors are never lost', () => {
  it('logs an error raised outside the error handler, with the request id', async () => {
    const prefix = testPrefix('errors');
    const logs = new LogCapture();
    // An id Node refuses in a header (the INSTANCE_ID incident): config validation stops it, so build around it.
    const config = {
      ...loadConfig({ PORT: '0', REDIS_PREFIX: prefix, SHUTDOWN_DRAIN_MS: '0' }),
      INSTANCE_ID: 'bad\nid',
    };
    const runtime: Runtime = await createRuntime(config, createLogger({ level: 'info', instanceId: 'errors' }, logs));
    try {
      const { url } = await runtime.listen();
      const response = await request(`${url}/healthz`, { headers: { 'x-request-id': 'escaped-error-0001' } });
      expect(response.status).toBe(500);
      const lines = logs.lines.map((line) => JSON.parse(line) as { msg: string; requestId?: string; level: string });
      expect(lines).toContainEqual(
        expect.objectContaining({
          msg: 'error outside the error handler',
          requestId: 'escaped-error-0001',
          level: 'error',
        }),
      );
    } finally {
      await runtime.shutdown();
      await deleteTestPrefix(prefix);
    }
  });

  describe('stats pages', () => {
    let server: Server;
    let url: string;
    const logs = new LogCapture();
    let failure: Error = new Error('unset');

    beforeAll(async () => {
      const logger = createLogger({ level: 'info', instanceId: 'stats' }, logs);
      const stats = {
        lastMinute: () => Promise.reject(failure),
        activeUsers: () => Promise.reject(failure),
      } as unknown as ClusterStats;
      const app = new Koa<AppState>();
      app.use(
        requestContext({ instanceId: 'stats', logger, metrics: createMetrics(), callerTag: callerKeys('k').hash }),
      );
      app.use(errorHandler());
      const router = statsRoutes({
        stats,
        queue: { counts: () => Promise.resolve({ waiting: 0, active: 0 }) },
        quota: undefined,
        instanceId: 'stats',
        adminToken: undefined,
      });
      app.use(router.routes());
      server = createServer(app.callback());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('answer 503 when Redis cannot be reached', async () => {
      failure = new RedisUnavailableError(new Error('connect ECONNREFUSED'));
      const response = await request(`${url}/dashboard`);
      expect(response.status).toBe(503);
      expect(response.json).toMatchObject({ error: { code: 'service_unavailable' } });
    });

    it('answer 500 for a bug, logged as one', async () => {
      failure = new TypeError("Cannot read properties of undefined (reading 'totals')");
      const response = await request(`${url}/dashboard`);
      expect(response.status).toBe(500);
      expect(response.json).toMatchObject({ error: { code: 'internal_error' } });
      expect(logs.text).toContain('unhandled error');
    });
  });
});
