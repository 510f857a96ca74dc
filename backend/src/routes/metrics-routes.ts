import Router from '@koa/router';
import type { AppState } from '../http/app-state.js';
import type { Metrics } from '../telemetry/metrics.js';

/** Prometheus text for this instance. Caddy does not expose it on the public entry. */
export function metricsRoutes(options: { metrics: Metrics }): Router<AppState> {
  const router = new Router<AppState>();
  router.get('/metrics', async (ctx) => {
    ctx.type = options.metrics.registry.contentType;
    ctx.body = await options.metrics.registry.metrics();
  });
  return router;
}
