import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** Latency buckets in seconds: resolve 1 ms cache hits up to 30 s upstream calls. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];

/** One registry per process (tests build their own), owning every metric. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  return {
    registry,
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
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
