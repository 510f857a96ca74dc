import Router from '@koa/router';
import { serviceUnavailable } from '../errors.js';
import { adminAuth } from '../http/admin-auth.js';
import type { AppState } from '../http/app-state.js';
import { RedisUnavailableError } from '../redis/redis-unavailable.js';
import type { ClusterSnapshot, ClusterStats } from '../telemetry/cluster-stats.js';
import { cacheFigures, dashboardReport, type UpstreamQuota } from '../telemetry/stats-report.js';

/** Where the queue's cluster-wide depth comes from (BullMQ's job counts). */
export interface QueueStatsSource {
  counts(): Promise<{ waiting: number; active: number }>;
}

export interface StatsRoutesOptions {
  stats: ClusterStats;
  queue: QueueStatsSource;
  quota: UpstreamQuota | undefined;
  instanceId: string;
  adminToken: string | undefined;
}

/**
 * GET /api/chat/stats and GET /dashboard: cluster-wide figures over the last
 * minute (active users over their own window), the same whichever instance
 * answers. Without Redis there is nothing true to show: 503, not zeros.
 */
export function statsRoutes(options: StatsRoutesOptions): Router<AppState> {
  const { stats, queue, quota, instanceId } = options;
  // Strict: the proxy hides these exact paths, so "/api/chat/stats/" must not serve them too.
  const router = new Router<AppState>({ strict: true });
  const guard = adminAuth({ token: options.adminToken });

  /** Redis trouble is a 503; any other failure is a bug, and goes on to the error handler as one. */
  async function fromRedis<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (error instanceof RedisUnavailableError) {
        throw serviceUnavailable('Cluster statistics are unavailable: Redis cannot be reached.');
      }
      throw error;
    }
  }

  router.get('/api/chat/stats', guard, async (ctx) => {
    const [{ activeUsers, totals }, counts] = await fromRedis(() =>
      Promise.all([stats.lastMinute(), queue.counts()] as const),
    );
    ctx.body = {
      activeUsers,
      cacheStats: cacheFigures(totals),
      queue: counts,
      uptime: Math.round(process.uptime()),
      instance: instanceId,
    };
  });

  router.get('/dashboard', guard, async (ctx) => {
    const snapshot: ClusterSnapshot = await fromRedis(() => stats.lastMinute());
    ctx.body = {
      ...dashboardReport(snapshot.activeUsers, snapshot.totals, quota),
      instance: instanceId,
    };
  });
  return router;
}
