import type { ClusterStats } from '../telemetry/cluster-stats.js';
import type { AppMiddleware } from './app-state.js';
import { routeTemplate } from './request-context.js';

/**
 * Routes for operators and machines (health checks, scrapes, the stats pages
 * themselves): they are neither users nor user traffic, and counting them would
 * make the figures change with every look at them.
 */
export const OPERATIONAL_ROUTES: ReadonlySet<string> = new Set([
  '/healthz',
  '/readyz',
  '/metrics',
  '/api/chat/stats',
  '/dashboard',
]);

/**
 * After client identity: counts the request, its latency and its outcome in
 * the cluster-wide window and marks the caller active. It records when the
 * response is done, so the status is the final one the error handler wrote,
 * and the Redis write happens off the request's path.
 */
export function recordClusterStats(options: { stats: ClusterStats }): AppMiddleware {
  const { stats } = options;
  return async function recordClusterStatsMiddleware(ctx, next) {
    const started = process.hrtime.bigint();
    ctx.res.once('close', () => {
      if (OPERATIONAL_ROUTES.has(routeTemplate(ctx))) {
        return;
      }
      stats.recordRequest({
        callerId: ctx.state.caller.id,
        // Closed before the answer was sent: the client gave up (nginx's 499).
        status: ctx.res.writableFinished ? ctx.status : 499,
        latencyMs: Number(process.hrtime.bigint() - started) / 1e6,
      });
    });
    await next();
  };
}
