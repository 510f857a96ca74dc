import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets in seconds: resolve 1 ms cache hits up to 30 s upstream calls. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];

/** One registry per process (tests build their own), owning every metric. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    ...httpMetrics(registry),
    ...upstreamMetrics(registry),
    ...accountMetrics(registry),
    ...queueMetrics(registry),
    ...resilienceMetrics(registry),
    ...quotaMetrics(registry),
    ...usageAndSafetyMetrics(registry),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** HTTP requests, and what the request path met: the cache and the rate limit. */
function httpMetrics(registry: Registry) {
  return {
    httpRequests: new Counter({
      name: 'focus_http_requests_total',
      help: 'HTTP requests by method, route template and status.',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'focus_http_request_duration_seconds',
      help: 'HTTP request latency by method and route template.',
      labelNames: ['method', 'route'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    cacheLookups: new Counter({
      name: 'focus_cache_lookups_total',
      help: 'Response cache lookups by result (hit, miss, error).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'focus_rate_limited_total',
      help: 'Requests refused by the per-caller rate limit.',
      registers: [registry],
    }),
  };
}

/** LLM calls, and the failures of the stores behind the service. */
function upstreamMetrics(registry: Registry) {
  return {
    upstreamCalls: new Counter({
      name: 'focus_upstream_calls_total',
      help: 'LLM calls by provider, model and outcome.',
      labelNames: ['provider', 'model', 'outcome'] as const,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'focus_upstream_duration_seconds',
      help: 'LLM call latency by provider and model.',
      labelNames: ['provider', 'model'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    upstreamTokens: new Counter({
      name: 'focus_upstream_tokens_total',
      help: 'Tokens spent upstream by provider, model and kind (prompt, completion).',
      labelNames: ['provider', 'model', 'kind'] as const,
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: 'focus_redis_errors_total',
      help: 'Redis failures by the component that met them.',
      labelNames: ['component'] as const,
      registers: [registry],
    }),
    postgresErrors: new Counter({
      name: 'focus_postgres_errors_total',
      help: 'PostgreSQL failures by the component that met them.',
      labelNames: ['component'] as const,
      registers: [registry],
    }),
  };
}

/** Credentials, streamed answers and sign-ups. */
function accountMetrics(registry: Registry) {
  return {
    authFailures: new Counter({
      name: 'focus_auth_failures_total',
      help: 'Requests refused for their credentials, by reason (invalid_token, auth_required).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    streams: new Counter({
      name: 'focus_streams_total',
      help: 'Streamed answers by route and how they ended: done, error (cut after its first words), abandoned (the client left).',
      labelNames: ['route', 'outcome'] as const,
      registers: [registry],
    }),
    signups: new Counter({
      name: 'focus_signups_total',
      help: 'Device accounts created.',
      registers: [registry],
    }),
  };
}

/** Chat queue (queue/); the cluster-wide focus_queue_jobs gauge is registered by queue/queue-depth-gauge.ts. */
function queueMetrics(registry: Registry) {
  return {
    queueCompleted: new Counter({
      name: 'focus_queue_completed_total',
      help: 'Chat jobs completed by this instance.',
      registers: [registry],
    }),
    queueFailed: new Counter({
      name: 'focus_queue_failed_total',
      help: 'Chat jobs failed for good (no attempt left, or not retryable) on this instance.',
      registers: [registry],
    }),
    queueRejected: new Counter({
      name: 'focus_queue_rejected_total',
      help: 'POST /api/chat/queue refused because the backlog reached QUEUE_MAX_WAITING.',
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'focus_queue_wait_seconds',
      help: 'Time from enqueue to the first start of a chat job.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers: [registry],
    }),
  };
}

/** Upstream resilience (llm/): quota governor, retries, fallback, circuit breaker, coalescing. */
function resilienceMetrics(registry: Registry) {
  return {
    quotaWaits: new Counter({
      name: 'focus_quota_waits_total',
      help: 'Requests that waited for upstream quota (whether room came or not), by provider.',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
    quotaWaitSeconds: new Histogram({
      name: 'focus_quota_wait_seconds',
      help: 'Time spent waiting for upstream quota (whether room was found or not).',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
    fallbacks: new Counter({
      name: 'focus_fallback_total',
      help: 'Requests sent to the fallback provider, by reason (quota, circuit_open, error).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    circuitState: new Gauge({
      name: 'focus_circuit_state',
      help: 'Circuit breaker state per provider on this instance: 0 closed, 1 half-open, 2 open.',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
    coalesced: new Counter({
      name: 'focus_coalesced_total',
      help: 'Requests answered by an identical request in flight (on any instance) instead of an upstream call.',
      registers: [registry],
    }),
    upstreamRetries: new Counter({
      name: 'focus_upstream_retries_total',
      help: 'Upstream calls retried after a transient failure, by provider.',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
  };
}

/** The shared upstream quota (llm/), as last seen by this instance. */
function quotaMetrics(registry: Registry) {
  return {
    quotaRemainingTokens: new Gauge({
      name: 'focus_quota_remaining_tokens',
      help: 'Tokens left in the current minute of the shared upstream quota, as last seen by this instance.',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
    quotaRemainingRequests: new Gauge({
      name: 'focus_quota_remaining_requests',
      help: 'Requests left in the current minute of the shared upstream quota, as last seen by this instance.',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
    quotaLimitTokens: new Gauge({
      name: 'focus_quota_limit_tokens',
      help: 'Effective tokens-per-minute limit (configured, or lower when learned from the upstream).',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
    quotaLimitRequests: new Gauge({
      name: 'focus_quota_limit_requests',
      help: 'Effective requests-per-minute limit (configured, or lower when learned from a 429).',
      labelNames: ['provider'] as const,
      registers: [registry],
    }),
  };
}

/** Per-user usage (usage/): daily token budgets; crisis messages (safety/): counts only, never the text. */
function usageAndSafetyMetrics(registry: Registry) {
  return {
    budgetExhausted: new Counter({
      name: 'focus_budget_exhausted_total',
      help: "Requests refused by the user's daily token budget, by reason (budget: spent for today; in_flight: held by the user's calls in flight).",
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    budgetFailOpen: new Counter({
      name: 'focus_budget_fail_open_total',
      help: 'Requests let through without a token budget check because Redis was failing.',
      registers: [registry],
    }),
    safetyTriggered: new Counter({
      name: 'focus_safety_triggered_total',
      help: 'Messages answered with the fixed safety answer, by category (suicide, self_harm, danger) and answer language.',
      labelNames: ['category', 'language'] as const,
      registers: [registry],
    }),
    safetyModelChecks: new Counter({
      name: 'focus_safety_model_checks_total',
      help: 'Moderation model (SAFETY_MODEL) verdicts: unsafe, safe, timeout, error (the last two leave the rules alone).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  };
}
