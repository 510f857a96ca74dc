import Router from '@koa/router';
import type { Redis } from 'ioredis';
import type { AppState } from '../http/app-state.js';

export interface Lifecycle {
  /** True once shutdown has begun: readiness fails so the proxy stops sending traffic. */
  readonly draining: boolean;
}

export interface HealthRoutesOptions {
  redis: Redis;
  lifecycle: Lifecycle;
  /** Extra readiness detail (e.g. circuit state), merged into the body. */
  readinessDetail?: () => Record<string, unknown>;
}

async function redisReachable(redis: Redis): Promise<boolean> {
  try {
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  }
}

/**
 * /healthz: the process is alive. /readyz: this instance should get traffic.
 * Redis being down is reported but does not fail readiness: it hits every
 * instance alike, and each one still answers (cache miss, in-memory limiter),
 * so taking them all out of the proxy would turn degradation into an outage.
 */
export function healthRoutes(options: HealthRoutesOptions): Router<AppState> {
  const router = new Router<AppState>();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const redisUp = await redisReachable(options.redis);
    const draining = options.lifecycle.draining;
    ctx.status = draining ? 503 : 200;
    ctx.body = {
      status: draining ? 'draining' : redisUp ? 'ready' : 'degraded',
      checks: { redis: redisUp ? 'up' : 'down', draining },
      ...options.readinessDetail?.(),
    };
  });
  return router;
}
