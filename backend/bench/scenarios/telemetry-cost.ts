/**
 * What the metrics and the cluster-wide stats cost per request.
 *
 *   make bench SCENARIO=telemetry-cost       (BENCH_DURATION_S, BENCH_ROUNDS to change the load runs)
 *
 * 1. Microbenchmarks: prom-client per request (one counter inc + one histogram
 *    observe), recording one request in the cluster stats (Node CPU, batch
 *    flushes included, and Redis CPU from INFO commandstats), and one scrape
 *    (registry.metrics(), including the focus_active_users read from Redis).
 * 2. A/B under load: a cache-hit request (a real Redis cache lookup) through a
 *    minimal Koa app, without telemetry ("bare"), with the request context
 *    (request id, prom-client metrics, access log at level silent: "metrics"),
 *    and with the cluster-stats middleware too ("metrics+stats"), in
 *    interleaved rounds. The figure to read is the process CPU per request
 *    (medians): unlike req/s it barely moves with other load on the machine,
 *    and the load generator's share cancels out between variants.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { pino } from 'pino';
import { createRedisResponseCache } from '../../src/cache/response-cache.js';
import { parseTrustedProxies } from '../../src/config.js';
import type { AppState } from '../../src/http/app-state.js';
import { clientIdentity } from '../../src/http/client-identity.js';
import { recordClusterStats } from '../../src/http/record-cluster-stats.js';
import { requestContext } from '../../src/http/request-context.js';
import { callerKeys } from '../../src/redis/caller-key.js';
import { registerActiveUsersGauge } from '../../src/telemetry/active-users-gauge.js';
import { type ClusterStats, createClusterStats } from '../../src/telemetry/cluster-stats.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics.js';
import { benchPrefix, deleteKeys, type LoadResult, report, runLoad, runScenario } from '../harness.js';

const SCENARIO = 'telemetry-cost';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const prefix = benchPrefix(SCENARIO);
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 0 });
const logger = pino({ level: 'silent' });
const round2 = (value: number) => Math.round(value * 100) / 100;

async function commandStats(): Promise<Map<string, { calls: number; usec: number }>> {
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_(\w+):calls=(\d+),usec=(\d+)/gm)) {
    stats.set(match[1] as string, { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

/** CPU time (user + system) per iteration in ns: steadier than wall time on a shared machine. */
function cpuNs(iterations: number, work: () => void): number {
  const before = process.cpuUsage();
  for (let index = 0; index < iterations; index += 1) {
    work();
  }
  const used = process.cpuUsage(before);
  return ((used.user + used.system) * 1000) / iterations;
}

async function microbenchmarks(metrics: Metrics, stats: ClusterStats) {
  const labels = { method: 'POST', route: '/api/chat' };
  cpuNs(100_000, () => metrics.httpRequests.inc({ ...labels, status: '200' }));
  const promNs = cpuNs(500_000, () => {
    metrics.httpRequests.inc({ ...labels, status: '200' });
    metrics.httpDuration.observe(labels, 0.0012);
  });

  const samples = 50_000;
  const before = await commandStats();
  const cpuBefore = process.cpuUsage();
  for (let index = 0; index < samples; index += 1) {
    stats.recordRequest({ callerId: `ip:10.0.${index % 250}.${index % 7}`, status: 200, latencyMs: 1.2 });
    // Let timers (the batch flush) run now and then, as requests arriving over time would.
    if (index % 500 === 499) {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  await stats.flush();
  const cpu = process.cpuUsage(cpuBefore);
  const after = await commandStats();
  let redisUsec = 0;
  let redisCalls = 0;
  for (const command of ['zadd', 'hincrby', 'expire', 'zremrangebyscore']) {
    redisUsec += (after.get(command)?.usec ?? 0) - (before.get(command)?.usec ?? 0);
    redisCalls += (after.get(command)?.calls ?? 0) - (before.get(command)?.calls ?? 0);
  }

  const scrapes = 200;
  const scrapeStarted = process.hrtime.bigint();
  let scrapeBytes = 0;
  for (let index = 0; index < scrapes; index += 1) {
    scrapeBytes = (await metrics.registry.metrics()).length;
  }
  return {
    promClientUsPerRequest: round2(promNs / 1000),
    statsRecordNodeCpuUsPerRequest: round2((cpu.user + cpu.system) / samples),
    // INFO commandstats deltas: other clients of this Redis add a little noise.
    statsRedisCommandsPerRequest: Math.round((redisCalls / samples) * 1e4) / 1e4,
    statsRedisCpuUsPerRequest: round2(redisUsec / samples),
    scrapeMs: round2(Number(process.hrtime.bigint() - scrapeStarted) / 1e6 / scrapes),
    scrapeBytes,
  };
}

type Variant = 'bare' | 'metrics' | 'metrics+stats';
const VARIANTS: readonly Variant[] = ['bare', 'metrics', 'metrics+stats'];

async function startApp(variant: Variant, stats: ClusterStats, cacheKey: string): Promise<Server> {
  const metrics = createMetrics();
  const cache = createRedisResponseCache({
    redis,
    prefix,
    ttlSeconds: 600,
    metrics,
    stats,
    tracker: createDegradationTracker('response-cache', logger, metrics),
  });
  const app = new Koa<AppState>();
  if (variant === 'bare') {
    app.use(async function benchState(ctx, next) {
      ctx.state.log = logger;
      await next();
    });
  } else {
    app.use(requestContext({ instanceId: 'bench', logger, metrics, callerTag: callerKeys('bench key').hash }));
  }
  app.use(clientIdentity({ trustedProxies: parseTrustedProxies('loopback') }));
  if (variant === 'metrics+stats') {
    app.use(recordClusterStats({ stats }));
  }
  const router = new Router<AppState>();
  router.post('/api/chat', async (ctx) => {
    const answer = await cache.get(cacheKey);
    ctx.body = { ...answer, cached: true, requestId: ctx.state.requestId };
  });
  app.use(router.routes());
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return server;
}

interface VariantRun extends LoadResult {
  /** Process CPU (server and load generator) per request; the generator's share is the same in every variant. */
  cpuUsPerRequest: number;
}

async function loadOnce(variant: Variant, stats: ClusterStats, cacheKey: string): Promise<VariantRun> {
  const server = await startApp(variant, stats, cacheKey);
  try {
    const before = process.cpuUsage();
    const result = await runLoad({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      path: '/api/chat',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'I cannot start my essay' }),
      durationSeconds: 8,
      connections: 10,
    });
    const used = process.cpuUsage(before);
    if (result.non2xx > 0 || result.errors > 0) {
      throw new Error(`${variant}: ${result.non2xx} non-2xx, ${result.errors} errors`);
    }
    return { ...result, cpuUsPerRequest: round2((used.user + used.system) / result.requests) };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

const medianOf = (values: readonly number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

runScenario(async () => {
  try {
    const metrics = createMetrics();
    const stats = createClusterStats({
      redis,
      prefix,
      activeUserWindowSeconds: 300,
      tracker: createDegradationTracker('cluster-stats', logger, metrics),
      callerKeys: callerKeys('bench key'),
    });
    registerActiveUsersGauge({ registry: metrics.registry, count: () => stats.activeUsers(), timeoutMs: 500 });
    const cacheKey = 'bench-answer';
    await redis.set(
      `${prefix}cache:v1:${cacheKey}`,
      JSON.stringify({
        response: 'Open the document and write one sentence, any sentence. Then stop and look at it.',
        model: 'llama-3.1-8b-instant',
        provider: 'groq',
        usage: { promptTokens: 180, completionTokens: 40 },
        createdAt: Date.now(),
      }),
    );
    const micro = await microbenchmarks(metrics, stats);

    // Interleaved, so drifting load on the machine hits every variant alike.
    const runs = new Map<Variant, VariantRun[]>(VARIANTS.map((variant) => [variant, []]));
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const variant of VARIANTS) {
        runs.get(variant)?.push(await loadOnce(variant, stats, cacheKey));
      }
    }
    const load = {} as Record<Variant, { cpuUsPerRequest: number; requestsPerSecond: number; p99Ms: number }>;
    for (const variant of VARIANTS) {
      const results = runs.get(variant) ?? [];
      load[variant] = {
        cpuUsPerRequest: medianOf(results.map((result) => result.cpuUsPerRequest)),
        requestsPerSecond: medianOf(results.map((result) => result.requestsPerSecond)),
        p99Ms: medianOf(results.map((result) => result.p99Ms)),
      };
    }
    const addedCpuUs = (from: Variant, to: Variant) => round2(load[to].cpuUsPerRequest - load[from].cpuUsPerRequest);
    report(SCENARIO, {
      node: process.version,
      ...micro,
      load,
      addedCpuUsPerRequest: {
        requestContext: addedCpuUs('bare', 'metrics'),
        clusterStats: addedCpuUs('metrics', 'metrics+stats'),
      },
    });
  } finally {
    await redis.quit();
    await deleteKeys(REDIS_URL, prefix);
  }
});
