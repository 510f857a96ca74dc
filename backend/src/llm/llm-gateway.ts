import { sleep } from '../shared/sleep.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { type BreakerState, isCircuitOpenError, type ProviderBreaker } from './provider-breaker.js';
import {
  type CallContext,
  createUsageEstimator,
  type QuotaGovernor,
  type SettleOutcome,
  type UsageEstimator,
} from './quota-governor.js';
import { createRetryBackoff, type RetryBackoff, type RetryPolicy } from './retry-policy.js';
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
  /** The in-process clock (deadlines, the retry budget); Date.now by default. */
  now?: () => number;
}

export interface LlmGateway extends CompletionGateway {
  /** Per provider: model and circuit state on this instance (for /readyz). */
  status(): { upstream: Record<string, { model: string; circuit: BreakerState }> };
}

type FallbackReason = 'quota' | 'circuit_open' | 'error';

type Failure = { ok: false; reason: FallbackReason | 'rejected'; error: UpstreamError };

type RouteOutcome = { ok: true; completion: Completion } | Failure;

/** What one call to the provider came to. */
type CallResult =
  | { kind: 'completed'; completion: Completion }
  /** The circuit opened before the call: it was never sent. */
  | { kind: 'circuit_open' }
  | { kind: 'failed'; error: UpstreamError };

/** What the gateway shares with each step. */
interface Gateway {
  options: LlmGatewayOptions;
  log: Logger;
  now: () => number;
  estimators: Map<GatewayRoute, UsageEstimator>;
}

/** One request on one route: its quota estimate and its retry budget. */
interface RouteRun {
  route: GatewayRoute;
  request: CompletionRequest;
  context: CallContext;
  labels: { provider: string; model: string };
  estimator: UsageEstimator;
  estimate: number;
  /**
   * The retry budget (calls and backoff) starts with the first granted reservation: a
   * quota wait longer than the budget must not leave the call itself MIN_CALL_MS.
   */
  budgetEnd: number | undefined;
  /** The pauses between retries, from the first failure on. */
  backoff: RetryBackoff | undefined;
}

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
  const { primary, fallback } = options;
  const routes = fallback ? [primary, fallback] : [primary];
  const gateway: Gateway = {
    options,
    log: options.logger.child({ component: 'llm-gateway' }),
    now: options.now ?? Date.now,
    estimators: new Map(routes.map((route) => [route, route.estimator ?? createUsageEstimator()])),
  };
  return {
    target: { provider: primary.provider.name, model: primary.provider.model },
    alternates: fallback ? [{ provider: fallback.provider.name, model: fallback.provider.model }] : [],
    complete: (request) => complete(gateway, request),
    status() {
      const upstream: Record<string, { model: string; circuit: BreakerState }> = {};
      for (const route of routes) {
        upstream[route.provider.name] = { model: route.provider.model, circuit: route.breaker.state };
      }
      return { upstream };
    },
  };
}

/** The primary, then (unless it rejected the request itself) the fallback. */
async function complete(gateway: Gateway, request: CompletionRequest): Promise<Completion> {
  const { primary, fallback, metrics } = gateway.options;
  const quotaDeadline = gateway.now() + (request.maxQuotaWaitMs ?? gateway.options.defaultQuotaWaitMs);
  const first = await attempt(gateway, primary, request, quotaDeadline);
  if (first.ok) {
    return first.completion;
  }
  if (!fallback || first.reason === 'rejected' || request.signal?.aborted) {
    throw finalError(gateway, first);
  }
  metrics.fallbacks.inc({ reason: first.reason });
  gateway.log.warn(
    { from: primary.provider.name, to: fallback.provider.name, reason: first.reason, kind: first.error.kind },
    'falling back to the fallback provider',
  );
  const second = await attempt(gateway, fallback, request, quotaDeadline);
  if (second.ok) {
    return second.completion;
  }
  throw finalError(gateway, second, [first]);
}

/** One route's loop: reserve, call, settle, then decide whether to try again. */
async function attempt(
  gateway: Gateway,
  route: GatewayRoute,
  request: CompletionRequest,
  quotaDeadline: number,
): Promise<RouteOutcome> {
  const estimator = gateway.estimators.get(route) ?? createUsageEstimator();
  const run: RouteRun = {
    route,
    request,
    context: { signal: request.signal },
    labels: { provider: route.provider.name, model: route.provider.model },
    estimator,
    estimate: estimator.estimate(request.messages, request.maxTokens),
    budgetEnd: undefined,
    backoff: undefined,
  };
  for (let attemptNo = 1; ; attemptNo += 1) {
    const reservation = await reserve(run, quotaDeadline);
    if (!reservation.ok) {
      return reservation;
    }
    const result = await call(gateway, run);
    await settle(run, reservation.id, result);
    if (result.kind === 'completed') {
      return { ok: true, completion: result.completion };
    }
    if (result.kind === 'circuit_open') {
      return circuitOpen(route);
    }
    const failure = await decide(gateway, run, result.error, attemptNo);
    if (failure) {
      return failure;
    }
  }
}

/** Quota for one call, unless the circuit is open or the quota has no room before the deadline. */
async function reserve(run: RouteRun, quotaDeadline: number): Promise<{ ok: true; id: string | undefined } | Failure> {
  const { provider, quota, breaker } = run.route;
  if (breaker.skipping) {
    return circuitOpen(run.route);
  }
  const reservation = await quota.reserve(run.estimate, quotaDeadline, run.context);
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
  return { ok: true, id: reservation.id };
}

/** The provider's call through the breaker, within what is left of the retry budget, with its metrics. */
async function call(gateway: Gateway, run: RouteRun): Promise<CallResult> {
  const { provider, breaker } = run.route;
  // Checked again with no await before execute() (here, not in reserve(): returning from it
  // awaits): a caller that passed the first check while the circuit was cooling down must
  // not queue behind (then repeat) the probe.
  if (breaker.skipping) {
    return { kind: 'circuit_open' };
  }
  const { metrics, retry } = gateway.options;
  run.budgetEnd ??= gateway.now() + retry.budgetMs;
  const timeoutMs = Math.max(MIN_CALL_MS, run.budgetEnd - gateway.now());
  const started = performance.now();
  try {
    const completion = await breaker.execute(() => provider.complete({ ...run.request, timeoutMs }));
    const { promptTokens, completionTokens } = completion.usage;
    run.estimator.learn(run.request.messages, completion.usage);
    metrics.upstreamCalls.inc({ ...run.labels, outcome: 'success' });
    metrics.upstreamDuration.observe(run.labels, (performance.now() - started) / 1000);
    metrics.upstreamTokens.inc({ ...run.labels, kind: 'prompt' }, promptTokens);
    metrics.upstreamTokens.inc({ ...run.labels, kind: 'completion' }, completionTokens);
    return { kind: 'completed', completion };
  } catch (caught) {
    if (isCircuitOpenError(caught)) {
      return { kind: 'circuit_open' };
    }
    const error =
      caught instanceof UpstreamError
        ? caught
        : new UpstreamError('unavailable', provider.name, 'unexpected upstream failure');
    metrics.upstreamCalls.inc({ ...run.labels, outcome: error.kind });
    metrics.upstreamDuration.observe(run.labels, (performance.now() - started) / 1000);
    return { kind: 'failed', error };
  }
}

/** The reservation, settled with what the call really spent. */
async function settle(run: RouteRun, reservationId: string | undefined, result: CallResult): Promise<void> {
  await run.route.quota.settle(reservationId, spent(run, result));
}

function spent(run: RouteRun, result: CallResult): SettleOutcome {
  if (result.kind === 'completed') {
    const { usage, limits } = result.completion;
    return { kind: 'counted', tokens: usage.promptTokens + usage.completionTokens, limits };
  }
  if (result.kind === 'circuit_open') {
    return { kind: 'unused' };
  }
  const { error } = result;
  if (error.kind === 'rate_limited') {
    return { kind: 'refused', tokens: run.estimate, retryAfterMs: error.retryAfterMs, limits: error.limits };
  }
  // A timed-out call probably ran to the end upstream; a cut stream spent what it sent; an error answer nothing.
  return { kind: 'counted', tokens: error.kind === 'timeout' ? run.estimate : (error.spentTokens ?? 0) };
}

/** After a failed call: the route's final failure, or (after the backoff) undefined to try again. */
async function decide(
  gateway: Gateway,
  run: RouteRun,
  error: UpstreamError,
  attemptNo: number,
): Promise<Failure | undefined> {
  if (!error.retryable) {
    // Neither a request the provider refused nor a stream already half sent is the fallback's to redo.
    const final = error.kind === 'rejected' || error.kind === 'interrupted';
    return { ok: false, reason: final ? 'rejected' : 'error', error };
  }
  const { retry, metrics } = gateway.options;
  run.backoff ??= createRetryBackoff(retry);
  // After a 429 the next reservation waits out the pause it set, within the quota wait.
  const delayMs = error.kind === 'rate_limited' ? 0 : run.backoff.next(error.retryAfterMs);
  const budgetEnd = run.budgetEnd ?? gateway.now();
  if (attemptNo >= retry.maxAttempts || gateway.now() + delayMs + MIN_CALL_MS > budgetEnd) {
    return exhausted(error);
  }
  const provider = run.route.provider.name;
  metrics.upstreamRetries.inc({ provider });
  gateway.log.info({ provider, attempt: attemptNo, delayMs, kind: error.kind }, 'retrying upstream call');
  await sleep(delayMs, run.request.signal);
  return run.request.signal?.aborted ? exhausted(error) : undefined;
}

function exhausted(error: UpstreamError): Failure {
  return { ok: false, reason: error.kind === 'rate_limited' ? 'quota' : 'error', error };
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
function finalError(gateway: Gateway, last: Failure, earlier: readonly Failure[] = []): UpstreamError {
  const quota = [...earlier, last].filter((failure) => failure.reason === 'quota');
  if (quota.length > 0) {
    const retryAfterMs = Math.min(...quota.map((outcome) => outcome.error.retryAfterMs ?? Number.POSITIVE_INFINITY));
    return new UpstreamError(
      'rate_limited',
      gateway.options.primary.provider.name,
      'every upstream is at capacity',
      undefined,
      Number.isFinite(retryAfterMs) ? retryAfterMs : undefined,
    );
  }
  return last.error;
}
