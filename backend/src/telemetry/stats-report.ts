import type { WindowTotals } from './cluster-stats.js';
import { LATENCY_BOUNDS_MS } from './stats-window.js';

/** The per-minute budget of the primary provider, when one is configured. */
export interface UpstreamQuota {
  provider: string;
  tokensPerMinute: number;
  requestsPerMinute: number;
}

const ratio = (part: number, whole: number) => (whole === 0 ? 0 : part / whole);
const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

/**
 * The q-quantile (0..1) of the latencies in the window, in ms, interpolated
 * linearly inside its bucket as Prometheus' histogram_quantile does; 0 when
 * empty. A quantile in the overflow bucket reports the largest bound.
 */
export function latencyQuantileMs(buckets: readonly number[], q: number): number {
  const total = buckets.reduce((sum, count) => sum + count, 0);
  if (total === 0) {
    return 0;
  }
  const rank = q * total;
  let below = 0;
  for (const [index, count] of buckets.entries()) {
    const upper = LATENCY_BOUNDS_MS[index];
    if (upper === undefined) {
      break;
    }
    if (below + count >= rank && count > 0) {
      const lower = index === 0 ? 0 : (LATENCY_BOUNDS_MS[index - 1] as number);
      return lower + (upper - lower) * ((rank - below) / count);
    }
    below += count;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1] as number;
}

export function cacheFigures(totals: WindowTotals) {
  const lookups = totals.cacheHits + totals.cacheMisses;
  return { hits: totals.cacheHits, misses: totals.cacheMisses, hitRate: round(ratio(totals.cacheHits, lookups), 4) };
}

/** Upstream use in the window against the primary provider's per-minute quota. */
export function upstreamFigures(totals: WindowTotals, quota: UpstreamQuota | undefined) {
  let tokens = 0;
  let calls = 0;
  for (const usage of Object.values(totals.upstream)) {
    tokens += usage.tokens;
    calls += usage.calls;
  }
  const primary = quota ? (totals.upstream[quota.provider] ?? { calls: 0, tokens: 0 }) : undefined;
  return {
    tokensLastMinute: tokens,
    callsLastMinute: calls,
    byProvider: totals.upstream,
    quota:
      quota && primary
        ? {
            provider: quota.provider,
            tokensPerMinute: quota.tokensPerMinute,
            requestsPerMinute: quota.requestsPerMinute,
            tokensUsedShare: round(ratio(primary.tokens, quota.tokensPerMinute), 4),
            requestsUsedShare: round(ratio(primary.calls, quota.requestsPerMinute), 4),
          }
        : null,
  };
}

/** The /dashboard body: every figure over the last minute, cluster-wide; times in ms. */
export function dashboardReport(activeUsers: number, totals: WindowTotals, quota: UpstreamQuota | undefined) {
  const errors = totals.clientErrors + totals.serverErrors;
  return {
    activeUsers,
    requestsPerMinute: totals.requests,
    avgResponseTime: round(ratio(totals.latencySumMs, totals.requests), 1),
    p50ResponseTime: round(latencyQuantileMs(totals.latencyBuckets, 0.5), 1),
    p95ResponseTime: round(latencyQuantileMs(totals.latencyBuckets, 0.95), 1),
    p99ResponseTime: round(latencyQuantileMs(totals.latencyBuckets, 0.99), 1),
    cacheHitRate: cacheFigures(totals).hitRate,
    errorRate: round(ratio(errors, totals.requests), 4),
    serverErrorRate: round(ratio(totals.serverErrors, totals.requests), 4),
    upstream: upstreamFigures(totals, quota),
  };
}
