import { describe, expect, it } from 'vitest';
import type { WindowTotals } from '../../src/telemetry/cluster-stats.js';
import { dashboardReport, latencyQuantileMs } from '../../src/telemetry/stats-report.js';
import { LATENCY_BOUNDS_MS, latencyBucketIndex } from '../../src/telemetry/stats-window.js';

function buckets(counts: Record<number, number>): number[] {
  return Array.from({ length: LATENCY_BOUNDS_MS.length + 1 }, (_, index) => counts[index] ?? 0);
}

describe('latency buckets and quantiles of the window', () => {
  it('puts a latency in the first bucket whose bound is not below it', () => {
    expect(latencyBucketIndex(0.3)).toBe(0);
    expect(latencyBucketIndex(1)).toBe(0);
    expect(latencyBucketIndex(1.01)).toBe(1);
    expect(latencyBucketIndex(30_000)).toBe(LATENCY_BOUNDS_MS.length - 1);
    expect(latencyBucketIndex(45_000)).toBe(LATENCY_BOUNDS_MS.length);
  });

  it('interpolates inside the bucket holding the rank, like histogram_quantile', () => {
    // 100 requests between 2 and 5 ms (bucket 2): the median is half-way.
    expect(latencyQuantileMs(buckets({ 2: 100 }), 0.5)).toBeCloseTo(3.5);
    // 90 fast (<= 1 ms) and 10 between 500 ms and 1 s: p95 is half-way through the slow bucket.
    expect(latencyQuantileMs(buckets({ 0: 90, 9: 10 }), 0.95)).toBeCloseTo(750);
    expect(latencyQuantileMs(buckets({ 0: 90, 9: 10 }), 0.5)).toBeCloseTo((50 / 90) * 1);
  });

  it('reports 0 for an empty window and the largest bound for the overflow bucket', () => {
    expect(latencyQuantileMs(buckets({}), 0.95)).toBe(0);
    expect(latencyQuantileMs(buckets({ [LATENCY_BOUNDS_MS.length]: 3 }), 0.5)).toBe(30_000);
  });
});

describe('dashboardReport', () => {
  const totals: WindowTotals = {
    requests: 200,
    clientErrors: 15,
    serverErrors: 5,
    latencySumMs: 3000,
    latencyBuckets: buckets({ 1: 150, 6: 50 }),
    cacheHits: 30,
    cacheMisses: 90,
    upstream: { groq: { calls: 9, tokens: 1500 }, fallback: { calls: 3, tokens: 600 } },
  };

  it('turns the window sums into rates, averages and quantiles', () => {
    const report = dashboardReport(12, totals, { provider: 'groq', tokensPerMinute: 6000, requestsPerMinute: 30 });
    expect(report).toMatchObject({
      activeUsers: 12,
      requestsPerMinute: 200,
      avgResponseTime: 15,
      cacheHitRate: 0.25,
      errorRate: 0.1,
      serverErrorRate: 0.025,
      p50ResponseTime: 1.7, // 1 + (2 - 1) * 100/150, rounded to 0.1 ms
      p95ResponseTime: 50 + (100 - 50) * (40 / 50),
    });
    expect(report.upstream).toEqual({
      tokensLastMinute: 2100,
      callsLastMinute: 12,
      byProvider: totals.upstream,
      quota: {
        provider: 'groq',
        tokensPerMinute: 6000,
        requestsPerMinute: 30,
        tokensUsedShare: 0.25,
        requestsUsedShare: 0.3,
      },
    });
  });

  it('has no quota figures when no quota is configured, and zeros (not NaN) for an idle cluster', () => {
    const idle: WindowTotals = {
      ...totals,
      requests: 0,
      clientErrors: 0,
      serverErrors: 0,
      latencySumMs: 0,
      cacheHits: 0,
      cacheMisses: 0,
      latencyBuckets: buckets({}),
      upstream: {},
    };
    const report = dashboardReport(0, idle, undefined);
    expect(report).toMatchObject({
      requestsPerMinute: 0,
      avgResponseTime: 0,
      cacheHitRate: 0,
      errorRate: 0,
      p95ResponseTime: 0,
    });
    expect(report.upstream.quota).toBeNull();
  });
});
