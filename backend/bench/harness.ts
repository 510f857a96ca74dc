import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { type GroqSimulator, startGroqSimulator } from '../sim/groq-simulator.js';

/**
 * The few pieces every benchmark scenario shares. A scenario is one file in
 * scenarios/ that sets up what it measures, drives load with runLoad() and
 * prints one JSON line with report(). Load only ever goes to loopback.
 */

export interface LoadOptions {
  /** Base URL of the target, e.g. http://127.0.0.1:41234 (loopback only). */
  url: string;
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** BENCH_DURATION_S overrides it, for a quick try of a scenario. */
  durationSeconds: number;
  connections: number;
  /** Changes each request before it is sent (a new body each time: cache misses). */
  setupRequest?: (request: { body?: string | Buffer }) => { body?: string | Buffer };
}

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  /** Answers by status code, when some were not 2xx (what they were matters more than how many). */
  statusCodes?: Record<string, number>;
  /** Connection errors and timeouts. */
  errors: number;
  requests: number;
  durationSeconds: number;
  connections: number;
}

const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const target = new URL(options.path, options.url);
  if (!LOOPBACK.has(target.hostname)) {
    throw new Error(`benchmarks only load loopback, not ${target.hostname}`);
  }
  const durationSeconds = Number(process.env.BENCH_DURATION_S ?? options.durationSeconds);
  const result = await autocannon({
    url: target.toString(),
    method: options.method ?? 'GET',
    headers: options.headers,
    body: options.body,
    duration: durationSeconds,
    connections: options.connections,
    ...(options.setupRequest
      ? {
          requests: [
            { method: options.method ?? 'GET', headers: options.headers, setupRequest: options.setupRequest as never },
          ],
        }
      : {}),
  });
  return {
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    ...(result.non2xx > 0
      ? {
          statusCodes: Object.fromEntries(
            Object.entries(result.statusCodeStats ?? {}).map(([code, stats]) => [code, stats.count ?? 0]),
          ),
        }
      : {}),
    errors: result.errors + result.timeouts,
    requests: result.requests.total,
    durationSeconds,
    connections: options.connections,
  };
}

/** The one line a scenario prints: its name first, then its numbers. */
export function report(scenario: string, result: object): void {
  process.stdout.write(`${JSON.stringify({ scenario, ...result })}\n`);
}

/** A fresh key prefix, so a run never reads another run's cache or limits. */
export function benchPrefix(scenario: string): string {
  return `bench:${scenario}:${randomUUID().slice(0, 8)}:`;
}

export async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 500 }) as AsyncIterable<string[]>) {
      if (keys.length > 0) {
        await redis.del(...keys);
      }
    }
  } finally {
    await redis.quit();
  }
}

/** Runs a scenario's body; a failure is printed to stderr and fails the process. */
export function runScenario(body: () => Promise<void>): void {
  body().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}

/**
 * An instance's environment for a bench against the simulator: no quota gate
 * (GROQ_* 0) and no rate limit in the way of one load generator, warnings only.
 */
export function unlimitedBackendEnv(options: {
  redisUrl: string;
  prefix: string;
  upstreamUrl: string;
}): Record<string, string> {
  return {
    REDIS_URL: options.redisUrl,
    REDIS_PREFIX: options.prefix,
    GROQ_BASE_URL: options.upstreamUrl,
    GROQ_API_KEY: 'bench-key',
    GROQ_RPM: '0',
    GROQ_TPM: '0',
    GROQ_RPD: '0',
    GROQ_TPD: '0',
    MAX_REQUESTS_PER_MINUTE: '1000000000',
    LOG_LEVEL: 'warn',
  };
}

/**
 * The upstream of a cache-miss load, with limits no load here reaches. At its
 * defaults (tpm 0, rpd 14,400) the simulator still sends Groq's headers with a
 * 1,000,000-token minute, which an instance learns and obeys: once ~5,000
 * misses of ~195 tokens share a minute it refuses with 503
 * upstream_rate_limited and Retry-After (runtime-footprint's ~500 × 503 of
 * ~5,600 when it ran fast), and the load no longer measures the instance.
 */
export function startMissSimulator(latencyMs: number): Promise<GroqSimulator> {
  return startGroqSimulator({ latencyMs, apiKey: 'bench-key', tpm: 1e12, rpd: 1e9 });
}

/** POST /api/chat with a new question every request, so each one is a cache miss and goes upstream. */
export function runMissLoad(url: string, connections: number, durationSeconds = 10): Promise<LoadResult> {
  let index = 0;
  return runLoad({
    url,
    path: '/api/chat',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: 'warm-up' }),
    setupRequest: (request) => ({ ...request, body: JSON.stringify({ message: `Miss number ${index++}` }) }),
    durationSeconds,
    connections,
  });
}
