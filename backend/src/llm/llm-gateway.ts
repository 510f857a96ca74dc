import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { type BreakerState, isCircuitOpenError, type ProviderBreaker } from './provider-breaker.js';
import { createUsageEstimator, type QuotaGovernor, type UsageEstimator } from './quota-governor.js';
import { type RetryPolicy, retryDelayMs } from './retry-policy.js';
import { sleep } from './sleep.js';
import type { Completion, CompletionGateway, CompletionRequest, LlmProvider } from './types.js';
import { UpstreamError } from './upstream-error.js';

/** One provider with its own protections. */
export interface GatewayRoute {
  provider: LlmProvider;
  quota: QuotaGovernor;
  breaker: ProviderBreaker;
  /** What a call reserves of the quota; one that learns from this route's answers when absent. */
  estimator?: UsageEstimator;
}

export interface LlmGatewayOptions {
  primary: GatewayRoute;
  fallback?: GatewayRoute;
  retry: RetryPolicy;
  /** Quota wait of a request that does not say (a synchronous one). */
  defaultQuotaWaitMs: number;
  metrics: Metrics;
  logger: Logger;
}

export interface LlmGateway extends CompletionGateway {
  /** Per provider: model and circuit state on this instance (for /readyz). */
  status(): { upstream: Record<string, { model: string; circuit: BreakerState }> };
}

type FallbackReason = 'quota' | 'circuit_open' | 'error';

type Failure = { ok: false; reason: FallbackReason | 'rejected'; error: UpstreamError };

type RouteOutcome = { ok: true; completion: Completion } | Failure;

/** No call is started with less time than this left in the retry budget. */
const MIN_CALL_MS = 1000;

/**
 * The upstream policy of one completion:
 * 1. primary, unless its circuit is open: reserve quota (waiting up to the
 *    request's quota wait), call, retry transient failures with backoff and
 *    jitter within the retry budget, settle the quota with the real usage;
 * 2. when the primary's quota is spent, its circuit open or its retries
 *    exhausted (not when it rejected the request itself): the same with the
 *    fallback provider;
 * 3. otherwise an UpstreamError; 'rate_limited' with an honest retryAfterMs
 *    when quota is what is missing, so a queued job is delayed, not failed.
 */
export function createLlmGateway(options: LlmGatewayOptions): LlmGateway {
  const { primary, fallback, retry, metrics } = options;
  const estimators = new Map<GatewayRoute, UsageEstimator>(
    [primary, ...(fallback ? [fallback] : [])].map((route) => [route, route.estimator ?? createUsageEstimator()]),
  );

  async function attempt(
    route: GatewayRoute,
    request: CompletionRequest,
    quotaDeadline: number,
  ): Promise<RouteOutcome> {
    const { provider, quota, breaker } = route;
    const context = { signal: request.signal, log: request.log };
    const labels = { provider: provider.name, model: provider.model };
    const estimator = estimators.get(route) ?? createUsageEstimator();
    const estimate = estimator.estimate(request.messages, request.maxTokens);
    // The retry budget (calls and backoff) starts with the first granted reservation: a
    // quota wait longer than the budget must not leave the call itself MIN_CALL_MS.
    let budgetEnd: number | undefined;
    const exhausted = (error: UpstreamError): Failure => ({
      ok: false,
      reason: error.kind === 'rate_limited' ? 'quota' : 'error',
      error,
    });

    for (let attemptNo = 1; ; attemptNo += 1) {
      if (breaker.skipping) {
        return circuitOpen(route);
      }
      const reservation = await quota.reserve(estimate, quotaDeadline, context);
      if (!reservation.granted) {
        const error = new UpstreamError(
          'rate_limited',
          provider.name,
          `upstream quota spent (${reservation.reason})`,
          undefined,
          reservation.retryAfterMs,
        );
        return { ok: false, reason: 'quota', error };
      }

      // Checked again with no await before execute(): a caller that passed the first check
      // while the circuit was cooling down must not queue behind (then repeat) the probe.
      if (breaker.skipping) {
        await quota.settle(reservation.id, { kind: 'unused' }, context);
        return circuitOpen(route);
      }
      budgetEnd ??= Date.now() + retry.budgetMs;
      const started = performance.now();
      try {
        const timeoutMs = Math.max(MIN_CALL_MS, budgetEnd - Date.now());
        const completion = await breaker.execute(() => provider.complete({ ...request, timeoutMs }));
        const { promptTokens, completionTokens } = completion.usage;
        estimator.learn(request.messages, completion.usage);
        metrics.upstreamCalls.inc({ ...labels, outcome: 'success' });
        metrics.upstreamDuration.observe(labels, (performance.now() - started) / 1000);
        metrics.upstreamTokens.inc({ ...labels, kind: 'prompt' }, promptTokens);
        metrics.upstreamTokens.inc({ ...labels, kind: 'completion' }, completionTokens);
        await quota.settle(
          reservation.id,
          { kind: 'counted', tokens: promptTokens + completionTokens, limits: completion.limits },
          context,
        );
        return { ok: true, completion };
      } catch (caught) {
        if (isCircuitOpenError(caught)) {
          await quota.settle(reservation.id, { kind: 'unused' }, context);
          return circuitOpen(route);
        }
        const error =
          caught instanceof UpstreamError
            ? caught
            : new UpstreamError('unavailable', provider.name, 'unexpected upstream failure');
        metrics.upstreamCalls.inc({ ...labels, outcome: error.kind });
        metrics.upstreamDuration.observe(labels, (performance.now() - started) / 1000);
        await quota.settle(
          reservation.id,
          error.kind === 'rate_limited'
            ? { kind: 'refused', tokens: estimate, retryAfterMs: error.retryAfterMs, limits: error.limits }
            : // A timed-out call probably ran to the end upstream; a cut stream spent what it sent; an error answer nothing.
              { kind: 'counted', tokens: error.kind === 'timeout' ? estimate : (error.spentTokens ?? 0) },
          context,
        );
        if (!error.retryable) {
          // Neither a request the provider refused nor a stream already half sent is the fallback's to redo.
          const final = error.kind === 'rejected' || error.kind === 'interrupted';
          return { ok: false, reason: final ? 'rejected' : 'error', error };
        }
        // After a 429 the next reservation waits out the pause it set, within the quota wait.
        const delayMs = error.kind === 'rate_limited' ? 0 : retryDelayMs(attemptNo, retry, error.retryAfterMs);
        if (attemptNo >= retry.maxAttempts || Date.now() + delayMs + MIN_CALL_MS > budgetEnd) {
          return exhausted(error);
        }
        metrics.upstreamRetries.inc({ provider: provider.name });
        logFor(request).info(
          { provider: provider.name, attempt: attemptNo, delayMs, kind: error.kind },
          'retrying upstream call',
        );
        await sleep(delayMs, request.signal);
        if (request.signal?.aborted) {
          return exhausted(error);
        }
      }
    }
  }

  function logFor(request: CompletionRequest) {
    return (request.log ?? options.logger).child({ component: 'llm-gateway' });
  }

  function circuitOpen(route: GatewayRoute): Failure {
    const error = new UpstreamError(
      'unavailable',
      route.provider.name,
      'circuit open',
      undefined,
      route.breaker.retryAfterMs() || undefined,
    );
    return { ok: false, reason: 'circuit_open', error };
  }

  /** The error of the last provider tried, except that quota trouble wins, with the soonest honest retry time. */
  function finalError(last: Failure, earlier: readonly Failure[] = []): UpstreamError {
    const quota = [...earlier, last].filter((failure) => failure.reason === 'quota');
    if (quota.length > 0) {
      const retryAfterMs = Math.min(...quota.map((outcome) => outcome.error.retryAfterMs ?? Number.POSITIVE_INFINITY));
      return new UpstreamError(
        'rate_limited',
        primary.provider.name,
        'every upstream is at capacity',
        undefined,
        Number.isFinite(retryAfterMs) ? retryAfterMs : undefined,
      );
    }
    return last.error;
  }

  return {
    target: { provider: primary.provider.name, model: primary.provider.model },
    alternates: fallback ? [{ provider: fallback.provider.name, model: fallback.provider.model }] : [],

    async complete(request) {
      const quotaDeadline = Date.now() + (request.maxQuotaWaitMs ?? options.defaultQuotaWaitMs);
      const first = await attempt(primary, request, quotaDeadline);
      if (first.ok) {
        return first.completion;
      }
      if (!fallback || first.reason === 'rejected' || request.signal?.aborted) {
        throw finalError(first);
      }
      metrics.fallbacks.inc({ reason: first.reason });
      logFor(request).warn(
        { from: primary.provider.name, to: fallback.provider.name, reason: first.reason, kind: first.error.kind },
        'falling back to the fallback provider',
      );
      const second = await attempt(fallback, request, quotaDeadline);
      if (second.ok) {
        return second.completion;
      }
      throw finalError(second, [first]);
    },

    status() {
      const upstream: Record<string, { model: string; circuit: BreakerState }> = {};
      for (const route of fallback ? [primary, fallback] : [primary]) {
        upstream[route.provider.name] = { model: route.provider.model, circuit: route.breaker.state };
      }
      return { upstream };
    },
  };
}
