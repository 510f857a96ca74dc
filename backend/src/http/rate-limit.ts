import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { rateLimited } from '../errors.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { AppMiddleware } from './app-state.js';

export interface RateLimitOptions {
  redis: Redis;
  prefix: string;
  pointsPerMinute: number;
  metrics: Metrics;
  tracker: DegradationTracker;
}

/**
 * Per-caller limit shared by every instance through Redis. When Redis fails,
 * each instance falls back to its own in-memory limiter with the same limit
 * (fail open, but not unlimited) and the outage is logged once.
 */
export function rateLimit(options: RateLimitOptions): AppMiddleware {
  const { pointsPerMinute, metrics, tracker } = options;
  const shared = new RateLimiterRedis({
    storeClient: options.redis,
    keyPrefix: `${options.prefix}rl`,
    points: pointsPerMinute,
    duration: 60,
    rejectIfRedisNotReady: true,
  });
  const insurance = new RateLimiterMemory({ points: pointsPerMinute, duration: 60 });

  async function consume(key: string): Promise<RateLimiterRes> {
    try {
      const result = await shared.consume(key);
      tracker.succeeded();
      return result;
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) {
        tracker.succeeded();
        throw rejection;
      }
      tracker.failed(rejection);
      return insurance.consume(key);
    }
  }

  return limitByCaller('chat', pointsPerMinute, consume, metrics);
}

/**
 * A per-instance, in-memory limit for cheap reads (status polls): it costs no
 * Redis round trip and does not spend the caller's chat budget, yet bounds what
 * one caller can make an instance do (the cluster-wide bound is N times this).
 */
export function localRateLimit(options: { name: string; pointsPerMinute: number; metrics: Metrics }): AppMiddleware {
  const limiter = new RateLimiterMemory({ points: options.pointsPerMinute, duration: 60 });
  return limitByCaller(options.name, options.pointsPerMinute, (key) => limiter.consume(key), options.metrics);
}

/** 429 with Retry-After and RateLimit-* when `consume` rejects; RateLimit-* on success too. */
function limitByCaller(
  name: string,
  pointsPerMinute: number,
  consume: (key: string) => Promise<RateLimiterRes>,
  metrics: Metrics,
): AppMiddleware {
  return async function rateLimitMiddleware(ctx, next) {
    let result: RateLimiterRes;
    try {
      result = await consume(`${name}:${ctx.state.caller.id}`);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) {
        throw rejection;
      }
      metrics.rateLimited.inc();
      const resetSeconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      throw rateLimited(resetSeconds, {
        'RateLimit-Limit': String(pointsPerMinute),
        'RateLimit-Remaining': '0',
        'RateLimit-Reset': String(resetSeconds),
      });
    }
    ctx.set('RateLimit-Limit', String(pointsPerMinute));
    ctx.set('RateLimit-Remaining', String(Math.max(0, result.remainingPoints)));
    ctx.set('RateLimit-Reset', String(Math.max(0, Math.ceil(result.msBeforeNext / 1000))));
    await next();
  };
}
