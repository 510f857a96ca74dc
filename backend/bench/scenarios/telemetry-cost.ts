/**
 * What the metrics and the cluster-wide stats cost per request.
 *
 *   npx tsx backend/bench/telemetry-cost.ts            (Redis on REDIS_URL, default 127.0.0.1:6379)
 *   BENCH_SECONDS=10 BENCH_CONNECTIONS=10 BENCH_ROUNDS=3 npx tsx backend/bench/telemetry-cost.ts
 *
 * 1. Microbenchmarks: prom-client per request (one counter inc + one histogram
 *    observe), recording one request in the cluster stats (Node CPU, batch
 *    flushes included, and Redis CPU from INFO commandstats), and one scrape
 *    (registry.metrics(), including the focus_active_users read from Redis).
 * 2. A/B under load: a cache-hit request (a real Redis cache lookup) through a
 *    minimal Koa app, without telemetry, with the request metrics, and with the
 *    metrics and the cluster-stats middleware, measured with autocannon in
 *    interleaved rounds (the median of each is reported).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { pino } from 'pino';
import { createRedisResponseCache } from '../src/cache/response-cache.js';
import type { AppState } from '../src/http/app-state.js';
import { clientIdentity, parseTrustedProxies } from '../src/http/client-identity.js';
import { recordClusterStats } from '../src/http/record-cluster-stats.js';
import { requestContext } from '../src/http/request-context.js';
import { registerActiveUsersGauge } from '../src/telemetry/active-users-gauge.js';
import { type ClusterStats, createClusterStats } from '../src/telemetry/cluster-stats.js';
import { createDegradationTracker } from '../src/telemetry/degradation.js';
import { createMetrics, type Metrics } from '../src/telemetry/metrics.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const prefix = `bench:telemetry:${randomUUID().slice(0, 8)}:`;
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 0 });
const logger = pino({ level: 'silent' });
const write = (line: string) => process.stdout.write(`${line}\n`);

async function commandStats(): Promise<Map<string, { calls: number; usec: number }>> {
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_(\w+):calls=(\d+),usec=(\d+)/gm)) {
    stats.set(match[1] as string, { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

function timeNs(iterations: number, work: () => void): number {
  const started = process.hrtime.bigint();
  for (let index = 0; index < iterations; index += 1) {
    work();
  }
  return Number(process.hrtime.bigint() - started) / iterations;
}

async function microbenchmarks(metrics: Metrics, stats: ClusterStats) {
  const labels = { method: 'POST', route: '/api/chat' };
  timeNs(100_000, () => metrics.httpRequests.inc({ ...labels, status: '200' }));
  const promNs = timeNs(500_000, () => {
    metrics.httpRequests.inc({ ...labels, status: '200' });
    metrics.httpDuration.observe(labels, 0.0012);
  });
  write(`prom-client, counter inc + histogram observe:   ${(promNs / 1000).toFixed(2)} µs per request`);

  const samples = 50_000;
  const before = await commandStats();
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let index = 0; index < samples; index += 1) {
    stats.recordRequest({ callerId: `ip:10.0.${index % 250}.${index % 7}`, status: 200, latencyMs: 1.2 });
    // Let timers (the batch flush) run now and then, as requests arriving over time would.
    if (index % 500 === 499) {
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  await stats.flush();
  const wallUs = Number(process.hrtime.bigint() - started) / 1000 / samples;
  const cpu = process.cpuUsage(cpuBefore);
  const after = await commandStats();
  let redisUsec = 0;
  const perCommand: string[] = [];
  for (const command of ['zadd', 'hincrby', 'expire', 'zremrangebyscore']) {
    const delta = (after.get(command)?.usec ?? 0) - (before.get(command)?.usec ?? 0);
    const calls = (after.get(command)?.calls ?? 0) - (before.get(command)?.calls ?? 0);
    redisUsec += delta;
    perCommand.push(`${command} ${(calls / samples).toFixed(2)}×`);
  }
  write(
    `cluster-stats record, Node CPU:                ${((cpu.user + cpu.system) / samples).toFixed(2)} µs per request ` +
      `(wall ${wallUs.toFixed(2)} µs; batched, flushes included)`,
  );
  write(
    `cluster-stats record, Redis CPU:               ${(redisUsec / samples).toFixed(2)} µs per request (${perCommand.join(', ')}; ` +
      'INFO commandstats delta, other clients of this Redis add noise)',
  );

  const scrapes = 200;
  const scrapeStarted = process.hrtime.bigint();
  let bytes = 0;
  for (let index = 0; index < scrapes; index += 1) {
    bytes = (await metrics.registry.metrics()).length;
  }
  write(
    `one scrape, registry.metrics():               ${(Number(process.hrtime.bigint() - scrapeStarted) / 1e6 / scrapes).toFixed(2)} ms ` +
      `(${bytes} bytes, includes the focus_active_users ZCOUNT)`,
  );
}

/** bare: no telemetry; metrics: + request context (ids, prom-client, access log at level silent); metrics+stats: + cluster stats. */
type Variant = 'bare' | 'metrics' | 'metrics+stats';

async function startApp(variant: Variant, stats: ClusterStats, cacheKey: string): Promise<Server> {
  const metrics = createMetrics();
  const cache = createRedisResponseCache({
    redis,
    prefix,
    ttlSeconds: 600,
    metrics,
    tracker: createDegradationTracker('response-cache', logger, metrics),
  });
  const app = new Koa<AppState>();
  if (variant === 'bare') {
    app.use(async function benchState(ctx, next) {
      ctx.state.log = logger;
      await next();
    });
  } else {
    app.use(requestContext({ instanceId: 'bench', logger, metrics }));
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

async function load(server: Server): Promise<{ rps: number; meanMs: number; p99Ms: number }> {
  const { port } = server.address() as AddressInfo;
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/api/chat`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: 'I cannot start my essay' }),
    connections: CONNECTIONS,
    duration: SECONDS,
  });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${result.non2xx} non-2xx, ${result.errors} errors`);
  }
  return { rps: result.requests.average, meanMs: result.latency.average, p99Ms: result.latency.p99 };
}

async function main() {
  const metrics = createMetrics();
  const stats = createClusterStats({
    redis,
    prefix,
    activeUserWindowSeconds: 300,
    tracker: createDegradationTracker('cluster-stats', logger, metrics),
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

  write(`# microbenchmarks (node ${process.version})`);
  await microbenchmarks(metrics, stats);

  write(`\n# cache-hit POST /api/chat, autocannon ${CONNECTIONS} connections × ${SECONDS} s, ${ROUNDS} rounds each`);
  const results = new Map<Variant, { rps: number; meanMs: number; p99Ms: number }[]>();
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const variant of ['bare', 'metrics', 'metrics+stats'] as const) {
      const server = await startApp(variant, stats, cacheKey);
      const result = await load(server);
      await new Promise((resolve) => server.close(resolve));
      results.set(variant, [...(results.get(variant) ?? []), result]);
      write(
        `round ${round} ${variant.padEnd(14)} ${result.rps.toFixed(0).padStart(6)} req/s  mean ${result.meanMs.toFixed(2)} ms  p99 ${result.p99Ms} ms`,
      );
    }
  }
  const median = (variant: Variant) => {
    const sorted = (results.get(variant) ?? []).map((result) => result.rps).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] ?? 0;
  };
  const costUs = (from: Variant, to: Variant) => (1e6 / median(to) - 1e6 / median(from)).toFixed(1);
  write(
    `\nmedian: bare ${median('bare').toFixed(0)}, metrics ${median('metrics').toFixed(0)}, ` +
      `metrics+stats ${median('metrics+stats').toFixed(0)} req/s`,
  );
  write(
    `added service time per request at saturation: request metrics ${costUs('bare', 'metrics')} µs, ` +
      `cluster stats ${costUs('metrics', 'metrics+stats')} µs`,
  );

  for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 500 }) as AsyncIterable<string[]>) {
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  }
  await redis.quit();
}

await main();
