import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpFrom } from '../helpers/http-from.js';
import { deletePrefix, startTestBackend, type TestBackend } from '../helpers/test-backend.js';

/** The families the dashboard and the alerts are built on (issue: observability). */
const FAMILIES: Record<string, string> = {
  process_cpu_user_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  nodejs_eventloop_lag_seconds: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
  focus_http_requests_total: 'counter',
  focus_http_request_duration_seconds: 'histogram',
  focus_cache_lookups_total: 'counter',
  focus_rate_limited_total: 'counter',
  focus_upstream_calls_total: 'counter',
  focus_upstream_duration_seconds: 'histogram',
  focus_upstream_tokens_total: 'counter',
  focus_queue_jobs: 'gauge',
  focus_queue_completed_total: 'counter',
  focus_queue_failed_total: 'counter',
  focus_queue_rejected_total: 'counter',
  focus_queue_wait_seconds: 'histogram',
  focus_fallback_total: 'counter',
  focus_circuit_state: 'gauge',
  focus_quota_limit_tokens: 'gauge',
  focus_active_users: 'gauge',
  focus_redis_errors_total: 'counter',
};

function labelValues(text: string, metric: string, label: string): string[] {
  const pattern = new RegExp(`^${metric}\\{[^}]*\\b${label}="([^"]*)"`, 'gm');
  return [...text.matchAll(pattern)].map((match) => match[1] as string);
}

describe('GET /metrics', () => {
  let backend: TestBackend;
  let text: string;
  const jobId = randomUUID();

  beforeAll(async () => {
    backend = await startTestBackend({ LOG_LEVEL: 'warn' });
    const question = { message: 'Two minutes to tidy my desk: where do I start?' };
    expect((await httpFrom(`${backend.url}/api/chat`, { body: question })).status).toBe(200);
    expect((await httpFrom(`${backend.url}/api/chat`, { body: question })).status).toBe(200);
    await httpFrom(`${backend.url}/api/chat/status/${jobId}`);
    await httpFrom(`${backend.url}/no/such/${jobId}`);
    const answer = await httpFrom(`${backend.url}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toContain('text/plain');
    text = answer.text;
  });

  afterAll(async () => {
    await deletePrefix(backend.runtime, backend.prefix);
    await backend.close();
  });

  it('carries every family the dashboard and alerts use, with its type', () => {
    for (const [name, type] of Object.entries(FAMILIES)) {
      expect(text, name).toContain(`# TYPE ${name} ${type}`);
    }
  });

  it('labels requests with route templates, never raw URLs', () => {
    const routes = new Set(labelValues(text, 'focus_http_requests_total', 'route'));
    expect(routes).toContain('/api/chat');
    expect(routes).toContain('/api/chat/status/:jobId');
    expect(routes).toContain('unmatched');
    for (const route of routes) {
      expect(route).not.toContain(jobId);
      expect(route === 'unmatched' || route.startsWith('/')).toBe(true);
    }
    for (const route of labelValues(text, 'focus_http_request_duration_seconds_bucket', 'route')) {
      expect(route).not.toContain(jobId);
    }
  });

  it('counts the cache lookups: one miss, then one hit', () => {
    expect(text).toMatch(/^focus_cache_lookups_total\{result="miss"\} 1$/m);
    expect(text).toMatch(/^focus_cache_lookups_total\{result="hit"\} 1$/m);
  });

  it('has latency buckets that resolve 1 ms cache hits up to 30 s upstream calls', () => {
    const bounds = labelValues(text, 'focus_http_request_duration_seconds_bucket', 'le');
    expect(bounds).toContain('0.001');
    expect(bounds).toContain('30');
    expect(bounds).toContain('+Inf');
  });

  it('reports the cluster-wide active users', () => {
    // The test's own requests all come from 127.0.0.1: one caller.
    expect(text).toMatch(/^focus_active_users 1$/m);
  });
});
