import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { rateLimited } from '../errors.js';
import type { CallerKeys } from '../redis/caller-key.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { AppMiddleware, Caller } from './app-state.js';

export interface RateLimitOptions {
  redis: Redis;
  prefix: string;
  /** Separate allowances per minute: an anonymous caller is an IP (shared behind a NAT), a user is one person. */
  pointsPerMinute: { ip: number; user: number };
  metrics: Metrics;
  tracker: DegradationTracker;
  /** The counters are keyed by the caller's Redis name, never its id. */
  callerKeys: CallerKeys;
}

export interface CallerRateLimit {
  readonly middleware: AppMiddleware;
  /** Requests the caller made in the current minute (0 when unknown). */
  used(caller: Caller): Promise<number>;
  /** Drops the caller's counter (account deletion). */
  forget(caller: Caller): Promise<void>;
}

/**
 * A per-caller counter in Redis, shared by every instance, with
 * rate-limiter-flexible's insurance limiter: while Redis fails, each instance
 * counts in memory with the same limit (fail open, but not unlimited). The
 * insurance marks its answers, so the outage is logged once when it starts and
 * once when Redis answers again. Counters are keyed by the caller's Redis name,
 * never its id or address.
 */
function sharedLimiter(options: {
  redis: Redis;
  keyPrefix: string;
  points: number;
  durationSeconds: number;
  tracker: DegradationTracker;
}) {
  const { tracker } = options;
  const fromInsurance = new WeakSet<RateLimiterRes>();
  class ReportingInsurance extends RateLimiterMemory {
    override async consume(...args: Parameters<RateLimiterMemory['consume']>): Promise<RateLimiterRes> {
      tracker.failed(new Error('no answer from redis; counting in memory'));
      try {
        const result = await super.consume(...args);
        fromInsurance.add(result);
        return result;
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          fromInsurance.add(rejection);
        }
        throw rejection;
      }
    }
  }
  const shared = new RateLimiterRedis({
    storeClient: options.redis,
    keyPrefix: options.keyPrefix,
    points: options.points,
    duration: options.durationSeconds,
    rejectIfRedisNotReady: true,
    insuranceLimiter: new ReportingInsurance({ points: options.points, duration: options.durationSeconds }),
  });
  const answered = (result: RateLimiterRes) => {
    if (!fromInsurance.has(result)) {
      tracker.succeeded();
    }
  };
  return {
    shared,
    async consume(key: string): Promise<RateLimiterRes> {
      try {
        const result = await shared.consume(key);
        answered(result);
        return result;
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          answered(rejection);
        }
        throw rejection;
      }
    },
  };
}

export function rateLimit(options: RateLimitOptions): CallerRateLimit {
  const { metrics, tracker } = options;
  const limiter = (kind: Caller['kind']) =>
    sharedLimiter({
      redis: options.redis,
      keyPrefix: `${options.prefix}rl:${kind}`,
      points: options.pointsPerMinute[kind],
      durationSeconds: 60,
      tracker,
    });
  const limiters = { ip: limiter('ip'), user: limiter('user') };
  const consume = (caller: Caller) => limiters[caller.kind].consume(options.callerKeys.hash(caller.id));

  return {
    middleware: limitByCaller((caller) => options.pointsPerMinute[caller.kind], consume, metrics),
    async used(caller) {
      const result = await limiters[caller.kind].shared.get(options.callerKeys.hash(caller.id));
      return result?.consumedPoints ?? 0;
    },
    async forget(caller) {
      await limiters[caller.kind].shared.delete(options.callerKeys.hash(caller.id));
    },
  };
}

/** Sign-ups per client IP per hour, cluster-wide, so nobody mints thousands of accounts. */
export function signupRateLimit(options: {
  redis: Redis;
  prefix: string;
  perHour: number;
  metrics: Metrics;
  tracker: DegradationTracker;
  callerKeys: CallerKeys;
}): AppMiddleware {
  const limiter = sharedLimiter({
    redis: options.redis,
    keyPrefix: `${options.prefix}rl:signup`,
    points: options.perHour,
    durationSeconds: 3600,
    tracker: options.tracker,
  });
  return limitByCaller(
    () => options.perHour,
    (caller) => limiter.consume(options.callerKeys.hash(caller.id)),
    options.metrics,
  );
}

/**
 * A per-instance, in-memory limit for cheap reads (status polls): it costs no
 * Redis round trip and does not spend the caller's chat budget, yet bounds what
 * one caller can make an instance do (the cluster-wide bound is N times this).
 */
export function localRateLimit(options: { pointsPerMinute: number; metrics: Metrics }): AppMiddleware {
  const limiter = new RateLimiterMemory({ points: options.pointsPerMinute, duration: 60 });
  return limitByCaller(
    () => options.pointsPerMinute,
    (caller) => limiter.consume(caller.id),
    options.metrics,
  );
}

/**
 * The caller's own limit as headers: the IETF draft's RateLimit-*, and the
 * x-ratelimit-*-requests that OpenAI's and Groq's SDKs read.
 */
function limitHeaders(limit: number, remaining: number, resetSeconds: number): Record<string, string> {
  return {
    'RateLimit-Limit': String(limit),
    'RateLimit-Remaining': String(remaining),
    'RateLimit-Reset': String(resetSeconds),
    'x-ratelimit-limit-requests': String(limit),
    'x-ratelimit-remaining-requests': String(remaining),
    'x-ratelimit-reset-requests': `${resetSeconds}s`,
  };
}

/** 429 with Retry-After and the limit headers when `consume` rejects; the limit headers on success too. */
function limitByCaller(
  limitOf: (caller: Caller) => number,
  consume: (caller: Caller) => Promise<RateLimiterRes>,
  metrics: Metrics,
): AppMiddleware {
  return async function rateLimitMiddleware(ctx, next) {
    const pointsPerMinute = limitOf(ctx.state.caller);
    let result: RateLimiterRes;
    try {
      result = await consume(ctx.state.caller);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) {
        throw rejection;
      }
      metrics.rateLimited.inc();
      const resetSeconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      throw rateLimited(resetSeconds, limitHeaders(pointsPerMinute, 0, resetSeconds));
    }
    const headers = limitHeaders(
      pointsPerMinute,
      Math.max(0, result.remainingPoints),
      Math.max(0, Math.ceil(result.msBeforeNext / 1000)),
    );
    for (const [name, value] of Object.entries(headers)) {
      ctx.set(name, value);
    }
    await next();
  };
}
