import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../../deploy/local/ports.js';
import { type RunState, readRunState } from '../../../deploy/local/stack.js';
import { startGroqSimulator } from '../../sim/groq-simulator.js';
import { localStackEnv, runMake } from '../../test/helpers/local-stack.js';
import {
  cdfSpec,
  type QuotaPoint,
  quotaSpec,
  renderPng,
  type SweepPoint,
  sweepSpec,
  timelineSpec,
} from '../app-users/plots.js';
import { commandStats, cpuSeconds, delta, loadAverage, memoryMb, metricSum, scrape } from '../app-users/probes.js';
import { cdfPoints, countBy, percentile, round, spread, table, timeline } from '../app-users/report.js';
import type { QuestionRecord, WorkerConfig, WorkerSummary } from '../app-users/users.js';
import { report, runScenario } from '../harness.js';

/**
 * How many people the app can serve: USERS simulated app users (each a state
 * machine on the app's client helper: sign in, a question every 30-90 s by
 * stream or queue) against the real local stack (`make up` with INSTANCES
 * instances, Caddy, a Redis of its own, PostgreSQL) and the Groq simulator
 * with TIER's quota (free: 30 RPM / 6,000 TPM; paid: 10,000 RPM / 5,000,000
 * TPM) and UPSTREAM_LATENCY_MS before its first chunk. USERS and INSTANCES
 * take lists (USERS=20,40 INSTANCES=1,3): one run each, one after another.
 * Writes bench/results/app-users-<date>/ (JSON of every figure, summary.md,
 * PNG plots per run; README.md, sweep.json and users-vs-p95.png over the runs).
 */
const SCENARIO = 'app-users';
const env = process.env;
const list = (value: string | undefined, fallback: string) =>
  (value ?? fallback)
    .split(',')
    .map((item) => Number(item.trim()))
    .filter((item) => Number.isFinite(item) && item > 0);
const TIER = (env.TIER ?? 'free') as 'free' | 'paid';
const TIERS = {
  free: { rpm: 30, tpm: 6000, rpd: 14_400 },
  paid: { rpm: 10_000, tpm: 5_000_000, rpd: 100_000_000 },
};
if (!(TIER in TIERS)) {
  throw new Error(`TIER must be free or paid, not ${TIER}`);
}
const LIMITS = TIERS[TIER];
const USERS = list(env.USERS, TIER === 'free' ? '30' : '1000');
const INSTANCES = list(env.INSTANCES, '1');
const DURATION_S = Number(env.DURATION_S ?? env.BENCH_DURATION_S ?? 120);
const DRAIN_S = Number(env.DRAIN_S ?? 30);
const LATENCY_MS = Number(env.UPSTREAM_LATENCY_MS ?? 300);
const CHUNK_DELAY_MS = Number(env.CHUNK_DELAY_MS ?? 10);
const P95_LIMIT_MS = Number(env.P95_LIMIT_MS ?? 5000);
const SHARES = {
  streamShare: Number(env.STREAM_SHARE ?? 0.8),
  commonShare: Number(env.COMMON_SHARE ?? 0.35),
  historyShare: Number(env.HISTORY_SHARE ?? 0.3),
};
const GAP_MS = { minGapMs: 30_000, maxGapMs: 90_000 };
const MODEL = 'llama-3.1-8b-instant';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const WORKER = fileURLToPath(new URL('../app-users/users.ts', import.meta.url));
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 13);
const RESULTS = env.RESULTS_DIR ?? join(REPO, 'bench', 'results', `${SCENARIO}-${stamp}`);

interface InstanceProbe {
  id: string;
  pid: number;
  port: number;
  cpu: number;
  metrics: string;
}

const PROBE_ROUTES = ['/healthz', '/readyz', '/metrics'];
const appRequests = (text: string) =>
  metricSum(text, 'focus_http_requests_total') -
  PROBE_ROUTES.reduce((sum, route) => sum + metricSum(text, 'focus_http_requests_total', { route }), 0);

async function probeInstances(state: RunState): Promise<InstanceProbe[]> {
  return Promise.all(
    state.instances
      .filter((instance) => instance.pid !== null)
      .map(async (instance) => ({
        id: instance.id,
        pid: instance.pid as number,
        port: instance.port,
        cpu: cpuSeconds(instance.pid as number) ?? 0,
        metrics: await scrape(`http://127.0.0.1:${instance.port}/metrics`).catch(() => ''),
      })),
  );
}

function runWorkers(baseUrl: string, users: number, dir: string, startAt: number, rampMs: number) {
  const procs = Math.max(1, Number(env.LOADGEN_PROCS ?? Math.ceil(users / 4000)));
  return Promise.all(
    Array.from({ length: procs }, (_, index) => {
      const mine = Math.floor(users / procs) + (index < users % procs ? 1 : 0);
      const config: WorkerConfig = {
        baseUrl,
        users: mine,
        firstUser: index * Math.ceil(users / procs),
        startAt,
        durationMs: DURATION_S * 1000,
        drainMs: DRAIN_S * 1000,
        rampMs,
        ...GAP_MS,
        ...SHARES,
        outFile: join(dir, `records-${index}.jsonl`),
      };
      return new Promise<{ summary: WorkerSummary; records: QuestionRecord[] }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(config)], {
          cwd: REPO,
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString('utf8');
        });
        child.once('exit', (code) => {
          if (code !== 0) {
            reject(new Error(`load generator ${index} exited with ${code}`));
            return;
          }
          const lines = out.trim().split('\n');
          const records = readFileSync(config.outFile, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line) as QuestionRecord);
          resolve({ summary: JSON.parse(lines[lines.length - 1] as string) as WorkerSummary, records });
        });
      });
    }),
  ).then((results) => ({ procs, results }));
}

async function runOnce(users: number, instances: number) {
  const label = `${TIER}-i${instances}-u${users}`;
  const dir = join(RESULTS, label);
  mkdirSync(dir, { recursive: true });
  const loadBefore = loadAverage();
  const simulator = await startGroqSimulator({
    latencyMs: LATENCY_MS,
    chunkDelayMs: CHUNK_DELAY_MS,
    rpm: LIMITS.rpm,
    tpm: LIMITS.tpm,
    rpd: LIMITS.rpd,
    apiKey: 'bench-key',
  });
  const stackEnv = await localStackEnv({
    GROQ_BASE_URL: simulator.url,
    GROQ_API_KEY: 'bench-key',
    GROQ_MODEL: MODEL,
    GROQ_RPM: String(LIMITS.rpm),
    GROQ_TPM: String(LIMITS.tpm),
    // A Redis of the stack's own (nothing answers on this port): its INFO counts only this run.
    REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
    // Every simulated user signs up from 127.0.0.1.
    SIGNUPS_PER_IP_PER_HOUR: '1000000000',
    LOG_LEVEL: env.LOG_LEVEL ?? 'info',
    ...(env.QUEUE_CONCURRENCY ? { QUEUE_CONCURRENCY: env.QUEUE_CONCURRENCY } : {}),
    ...(env.QUEUE_MAX_WAITING ? { QUEUE_MAX_WAITING: env.QUEUE_MAX_WAITING } : {}),
  });
  await runMake(['up', `N=${instances}`], stackEnv);
  const tmp = mkdtempSync(join(tmpdir(), 'app-users-'));
  try {
    const state = await readRunState(stackEnv);
    if (!state) {
      throw new Error('the stack wrote no state');
    }
    const redisUrl = state.redis.url;
    // Sign-ins first (at most ~100 a second, a crowd of first launches), then the questions from askFrom:
    // every figure but the sign-ins' counts from there.
    const startAt = Date.now() + 2000;
    const rampMs = Number(env.RAMP_S ?? Math.max(10, Math.ceil(users / 100))) * 1000;
    const askFrom = startAt + rampMs;
    const work = runWorkers(state.publicUrl, users, tmp, startAt, rampMs);
    work.catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, askFrom - Date.now()));
    const before = await probeInstances(state);
    // The rest of the machine's share of the work: Caddy, Redis, PostgreSQL, this process (the simulator).
    const others = { caddy: state.caddy?.pid, redis: state.redis.pid, postgres: state.postgres?.pid };
    const othersBefore = Object.fromEntries(
      Object.entries(others).map(([name, pid]) => [name, pid ? (cpuSeconds(pid) ?? 0) : 0]),
    );
    const selfBefore = process.cpuUsage();
    const redisBefore = await commandStats(redisUrl);
    const simBefore = simulator.stats().requests;
    // Sampled every second: the upstream's trailing minute, the instances' CPU.
    const quota: (QuotaPoint & { calls: number; tokens: number })[] = [];
    const cpuSamples: { t: number; cpu: Record<string, number> }[] = [];
    const runStart = askFrom;
    const sampler = setInterval(() => {
      const now = Date.now();
      const window = simulator.stats().calls.filter((call) => call.status === 200 && call.at > now - 60_000);
      const tokens = window.reduce((sum, call) => sum + call.tokens, 0);
      const t = round((now - runStart) / 1000, 0);
      quota.push({
        t,
        calls: window.length,
        tokens,
        requestsShare: round(window.length / LIMITS.rpm, 4),
        tokensShare: round(tokens / LIMITS.tpm, 4),
      });
      cpuSamples.push({
        t,
        cpu: Object.fromEntries(before.map((probe) => [probe.id, cpuSeconds(probe.pid) ?? 0])),
      });
    }, 1000);
    const { procs, results } = await work;
    clearInterval(sampler);
    const after = await probeInstances(state);
    const selfCpu = process.cpuUsage(selfBefore);
    const cpuByProcess: Record<string, number> = {
      ...Object.fromEntries(
        Object.entries(others).map(([name, pid]) => [
          name,
          round((pid ? (cpuSeconds(pid) ?? 0) : 0) - (othersBefore[name] ?? 0), 1),
        ]),
      ),
      'simulator and this benchmark': round((selfCpu.user + selfCpu.system) / 1e6, 1),
    };
    const redisAfter = await commandStats(redisUrl);
    const sim = simulator.stats();
    const records = results.flatMap((result) => result.records);
    writeFileSync(join(dir, 'records.jsonl'), `${records.map((record) => JSON.stringify(record)).join('\n')}\n`);
    const loadAfter = loadAverage();

    // Questions and answer times.
    const answered = records.filter((r) => r.outcome === 'answered');
    const failed = records.filter((r) => r.outcome === 'failed');
    const unfinished = records.filter((r) => r.outcome === 'unfinished');
    const streamed = answered.filter((r) => r.via === 'stream' && !r.fellBack);
    const cacheHits = answered.filter((r) => r.cached && !r.coalesced).length;
    const coalesced = answered.filter((r) => r.coalesced).length;
    const upstreamOk = sim.byStatus['200'] ?? 0;
    const upstream429 = sim.byStatus['429'] ?? 0;
    // Our overhead, on streams (the queue's answers wait for the next poll, 0.5 s at least): a cache hit's
    // first word, a miss's first word less the upstream's first-chunk latency (quota waits included).
    const overhead = streamed
      .filter((r) => r.ttftMs !== undefined && !r.coalesced)
      .map((r) => (r.cached ? (r.ttftMs as number) : (r.ttftMs as number) - LATENCY_MS));

    // The stack's own account (sums over instances of counter deltas).
    const sumDelta = (name: string, match?: Record<string, string>) =>
      after.reduce((sum, probe) => {
        const earlier = before.find((b) => b.id === probe.id);
        return sum + metricSum(probe.metrics, name, match) - (earlier ? metricSum(earlier.metrics, name, match) : 0);
      }, 0);
    // The app's requests: every HTTP request but Caddy's health checks and Prometheus-style scrapes.
    const httpRequests = after.reduce((sum, probe) => {
      const earlier = before.find((b) => b.id === probe.id);
      return sum + appRequests(probe.metrics) - (earlier ? appRequests(earlier.metrics) : 0);
    }, 0);
    const quotaWaits = sumDelta('focus_quota_waits_total');
    const quotaWaitSeconds = sumDelta('focus_quota_wait_seconds_sum');
    const upstreamSeconds = sumDelta('focus_upstream_duration_seconds_sum');
    const upstreamCalls = sumDelta('focus_upstream_duration_seconds_count');
    const redisDelta = delta(redisAfter, redisBefore);
    const redisCommands = Object.values(redisDelta).reduce((sum, value) => sum + value, 0);
    const perInstance = after.map((probe) => {
      const earlier = before.find((b) => b.id === probe.id);
      const cpu = probe.cpu - (earlier?.cpu ?? 0);
      const requests = appRequests(probe.metrics) - (earlier ? appRequests(earlier.metrics) : 0);
      return {
        id: probe.id,
        pid: probe.pid,
        requests,
        cpuSeconds: round(cpu, 1),
        cpuSecondsPer1000Requests: requests > 0 ? round((cpu / requests) * 1000, 2) : null,
        cpuShareOfOneCore: round(cpu / (DURATION_S + DRAIN_S), 3),
        ...(memoryMb(probe.pid) ?? { peakRssMb: null, rssMb: null }),
      };
    });

    // The capacity rule, from what the run measured.
    const questionsPerUserPerMinute = records.length / users / (DURATION_S / 60);
    const missShare = answered.length > 0 ? 1 - (cacheHits + coalesced) / answered.length : 1;
    const tokensPerCall =
      upstreamOk > 0
        ? sim.calls.filter((c) => c.status === 200).reduce((s, c) => s + c.tokens, 0) /
          sim.calls.filter((c) => c.status === 200).length
        : 0;
    const callsPerMinuteAllowed = Math.min(LIMITS.rpm, tokensPerCall > 0 ? LIMITS.tpm / tokensPerCall : LIMITS.rpm);
    const predictedUsers = callsPerMinuteAllowed / (questionsPerUserPerMinute * missShare);
    // The quota's use once its trailing minute is full of this run (from 60 s to the end of asking).
    const steady = quota.filter((point) => point.t >= 60 && point.t <= DURATION_S);
    const binding = steady.map((point) => Math.max(point.requestsShare ?? 0, point.tokensShare ?? 0));
    const bindingLimit =
      steady.length > 0 &&
      steady.reduce((s, p) => s + (p.tokensShare ?? 0), 0) >= steady.reduce((s, p) => s + (p.requestsShare ?? 0), 0)
        ? 'tokens per minute'
        : 'requests per minute';
    const answerTimes = answered.map((r) => r.ms);
    const p95 = percentile(answerTimes, 0.95);
    const loadgen = results.map((result) => result.summary);
    const signInFailures = loadgen.reduce(
      (sum, summary) => sum + Object.values(summary.signInFailures).reduce((a, b) => a + b, 0),
      0,
    );
    const held =
      p95 !== null &&
      p95 < P95_LIMIT_MS &&
      failed.length === 0 &&
      unfinished.length === 0 &&
      upstream429 === 0 &&
      signInFailures === 0;

    const figures = {
      scenario: SCENARIO,
      label,
      when: new Date().toISOString(),
      config: {
        tier: TIER,
        limits: LIMITS,
        users,
        instances,
        signInRampS: rampMs / 1000,
        durationS: DURATION_S,
        drainS: DRAIN_S,
        upstreamLatencyMs: LATENCY_MS,
        chunkDelayMs: CHUNK_DELAY_MS,
        ...SHARES,
        gapS: [GAP_MS.minGapMs / 1000, GAP_MS.maxGapMs / 1000],
        loadGeneratorProcesses: procs,
        queueConcurrency: env.QUEUE_CONCURRENCY ?? 'default (2)',
        logLevel: env.LOG_LEVEL ?? 'info',
      },
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model,
        loadAverageBefore: loadBefore,
        loadAverageAfter: loadAfter,
      },
      signIns: {
        ok: loadgen.reduce((sum, summary) => sum + summary.signIns, 0),
        failed: signInFailures,
        retried: loadgen.reduce((sum, summary) => sum + summary.signInRetries, 0),
        failedByCode: loadgen.reduce<Record<string, number>>((all, summary) => {
          for (const [code, count] of Object.entries(summary.signInFailures)) {
            all[code] = (all[code] ?? 0) + count;
          }
          return all;
        }, {}),
      },
      questions: {
        asked: records.length,
        answered: answered.length,
        failed: failed.length,
        failedByCode: countBy(failed, (r) => `${r.code ?? 'unknown'}${r.status ? ` (${r.status})` : ''}`),
        unfinished: unfinished.length,
        byVia: countBy(records, (r) => (r.via === 'stream' ? (r.fellBack ? 'stream → queue' : 'stream') : 'queue')),
        byKind: countBy(records, (r) => r.kind),
        cacheHits,
        coalesced,
      },
      answerTime: spread(answerTimes),
      answerTimeStream: spread(streamed.map((r) => r.ms)),
      timeToFirstWord: spread(answered.flatMap((r) => (r.ttftMs === undefined ? [] : [r.ttftMs]))),
      answerTimeQueue: spread(answered.filter((r) => r.via === 'queue' || r.fellBack).map((r) => r.ms)),
      answerTimeCacheHits: spread(answered.filter((r) => r.cached && !r.coalesced).map((r) => r.ms)),
      ownOverhead: spread(overhead),
      streamCacheHitFirstWord: spread(
        streamed.filter((r) => r.cached && !r.coalesced && r.ttftMs !== undefined).map((r) => r.ttftMs as number),
      ),
      quota: {
        waits: quotaWaits,
        waitSecondsTotal: round(quotaWaitSeconds, 1),
        waitMsMeanPerUpstreamCall: upstreamCalls > 0 ? round((quotaWaitSeconds / upstreamCalls) * 1000, 0) : null,
        upstreamMsMeanPerCall: upstreamCalls > 0 ? round((upstreamSeconds / upstreamCalls) * 1000, 0) : null,
        bindingLimit,
        bindingShareMean: binding.length > 0 ? round(binding.reduce((s, v) => s + v, 0) / binding.length, 3) : null,
        bindingShareMax: binding.length > 0 ? round(Math.max(...binding), 3) : null,
        callsInAMinuteMax: Math.max(0, ...steady.map((p) => p.calls)),
        tokensInAMinuteMax: Math.max(0, ...steady.map((p) => p.tokens)),
      },
      upstream: {
        requests: sim.requests - simBefore,
        accepted: upstreamOk,
        rateLimited429: upstream429,
        byStatus: sim.byStatus,
        tokensPerCallMean: round(tokensPerCall, 1),
        callsSavedByCache: cacheHits,
        callsSavedByCoalescing: coalesced,
        shareOfQuestionsThatWentUpstream: answered.length > 0 ? round(upstreamOk / answered.length, 3) : null,
      },
      capacityRule: {
        questionsPerUserPerMinute: round(questionsPerUserPerMinute, 3),
        missShare: round(missShare, 3),
        upstreamCallsPerMinuteAllowed: round(callsPerMinuteAllowed, 1),
        predictedUsersHeld: Math.floor(predictedUsers),
        observedUpstreamCallsPerMinute: round(upstreamOk / ((DURATION_S + DRAIN_S) / 60), 1),
        demandUpstreamCallsPerMinute: round(users * questionsPerUserPerMinute * missShare, 1),
      },
      instances: perInstance,
      cpuSecondsByProcess: {
        ...Object.fromEntries(perInstance.map((i) => [i.id, i.cpuSeconds])),
        ...cpuByProcess,
        ...Object.fromEntries(results.map((r, index) => [`load generator ${index}`, r.summary.cpuSeconds])),
        available: round(cpus().length * (DURATION_S + DRAIN_S), 0),
      },
      http: {
        requests: httpRequests,
        perQuestion: records.length > 0 ? round(httpRequests / records.length, 2) : null,
      },
      redis: {
        commands: redisCommands,
        perHttpRequest: httpRequests > 0 ? round(redisCommands / httpRequests, 2) : null,
        perQuestion: records.length > 0 ? round(redisCommands / records.length, 1) : null,
        top: Object.fromEntries(
          Object.entries(redisDelta)
            .sort((a, b) => b[1] - a[1])
            .slice(0, 12),
        ),
      },
      loadGenerator: loadgen,
      held,
      heldRule: `p95 answer time < ${P95_LIMIT_MS} ms, 0 failed questions or sign-ins, 0 unfinished, 0 upstream 429s`,
      quotaSeries: quota,
      cpuSeries: cpuSamples,
    };
    writeFileSync(join(dir, 'run.json'), `${JSON.stringify(figures, null, 2)}\n`);

    const title = `${users} users, ${instances} instance(s), ${TIER} tier (${LIMITS.rpm} RPM, ${LIMITS.tpm} TPM), upstream ${LATENCY_MS} ms`;
    await renderPng(cdfSpec(`Answer time CDF: ${title}`, cdfPoints(records)), join(dir, 'answer-cdf.png'));
    await renderPng(
      timelineSpec(`Over the run: ${title}`, timeline(records, 10, DURATION_S + DRAIN_S)),
      join(dir, 'timeline.png'),
    );
    await renderPng(quotaSpec(`Upstream quota use: ${title}`, quota, LIMITS), join(dir, 'quota.png'));
    writeFileSync(join(dir, 'summary.md'), summaryMarkdown(figures));
    const { quotaSeries: _q, cpuSeries: _c, ...line } = figures;
    report(SCENARIO, {
      label,
      held,
      answered: answered.length,
      failed: failed.length,
      signInFailures,
      unfinished: unfinished.length,
      p50Ms: figures.answerTime.p50Ms,
      p95Ms: p95,
      p99Ms: figures.answerTime.p99Ms,
      upstream429,
      bindingShareMean: figures.quota.bindingShareMean,
      predictedUsersHeld: figures.capacityRule.predictedUsersHeld,
      results: dir,
    });
    void line;
    return figures;
  } finally {
    await runMake(['down'], stackEnv).catch((error: unknown) => process.stderr.write(`${String(error)}\n`));
    await simulator.close();
  }
}

type Figures = Awaited<ReturnType<typeof runOnce>>;

function summaryMarkdown(f: Figures): string {
  const ms = (s: { p50Ms: number | null; p95Ms: number | null; p99Ms: number | null; count: number }) => [
    s.count,
    s.p50Ms,
    s.p95Ms,
    s.p99Ms,
  ];
  return `# app-users: ${f.label}

${f.when} · ${f.config.users} simulated users · ${f.config.instances} instance(s) · ${f.config.tier} tier (${f.config.limits.rpm} RPM, ${f.config.limits.tpm} TPM) · upstream first chunk after ${f.config.upstreamLatencyMs} ms, then one every ${f.config.chunkDelayMs} ms · asking for ${f.config.durationS} s, answers awaited ${f.config.drainS} s more · ${f.config.loadGeneratorProcesses} load-generator process(es)

Machine: ${f.machine.cpus} × ${f.machine.model}, shared with everything (stack, load generator, other work); load average ${f.machine.loadAverageBefore.join(' / ')} before, ${f.machine.loadAverageAfter.join(' / ')} after.

**Held: ${f.held ? 'yes' : 'no'}** (${f.heldRule}).

## Sign-ins and questions

Sign-ins (over the first ${f.config.signInRampS} s, before the questions): ${f.signIns.ok} ok, ${f.signIns.retried} attempts retried, ${f.signIns.failed} failed after 3 attempts${
    f.signIns.failed > 0
      ? ` (${Object.entries(f.signIns.failedByCode)
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ')})`
      : ''
  }.

${table(
  ['asked', 'answered', 'failed', 'unfinished at the end', 'cache hits', 'coalesced', 'by path', 'failed by code'],
  [
    [
      f.questions.asked,
      f.questions.answered,
      f.questions.failed,
      f.questions.unfinished,
      f.questions.cacheHits,
      f.questions.coalesced,
      Object.entries(f.questions.byVia)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', '),
      Object.entries(f.questions.failedByCode)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ') || '–',
    ],
  ],
)}

## Answer times (ms)

${table(
  ['what', 'count', 'p50', 'p95', 'p99'],
  [
    ['every answer', ...ms(f.answerTime)],
    ['streams, whole answer', ...ms(f.answerTimeStream)],
    ['streams, first word', ...ms(f.timeToFirstWord)],
    ['through the queue (polling)', ...ms(f.answerTimeQueue)],
    ['cache hits', ...ms(f.answerTimeCacheHits)],
    ['our overhead (streams: first word of a hit; of a miss less the upstream latency)', ...ms(f.ownOverhead)],
    ['stream cache hits, first word', ...ms(f.streamCacheHitFirstWord)],
  ],
)}

## Upstream and quota

${table(
  [
    'upstream calls',
    '429s',
    'tokens a call',
    'saved by cache',
    'saved by coalescing',
    'quota waits',
    'mean quota wait a call, ms',
    'mean upstream time a call, ms',
    'binding limit',
    'its use (mean / max, from 60 s)',
  ],
  [
    [
      f.upstream.accepted,
      f.upstream.rateLimited429,
      f.upstream.tokensPerCallMean,
      f.upstream.callsSavedByCache,
      f.upstream.callsSavedByCoalescing,
      f.quota.waits,
      f.quota.waitMsMeanPerUpstreamCall,
      f.quota.upstreamMsMeanPerCall,
      f.quota.bindingLimit,
      `${f.quota.bindingShareMean === null ? '–' : `${round(f.quota.bindingShareMean * 100)}%`} / ${f.quota.bindingShareMax === null ? '–' : `${round(f.quota.bindingShareMax * 100)}%`}`,
    ],
  ],
)}

Capacity rule: users held ≈ upstream calls allowed a minute ÷ (questions a user asks a minute × share that misses the cache) = ${f.capacityRule.upstreamCallsPerMinuteAllowed} ÷ (${f.capacityRule.questionsPerUserPerMinute} × ${f.capacityRule.missShare}) ≈ **${f.capacityRule.predictedUsersHeld}** users; this run's demand: ${f.capacityRule.demandUpstreamCallsPerMinute} upstream calls a minute.

## Cost

${table(
  ['instance', 'app requests', 'CPU s', 'CPU s / 1,000 app requests', 'peak RSS MB'],
  f.instances.map((i) => [i.id, i.requests, i.cpuSeconds, i.cpuSecondsPer1000Requests, i.peakRssMb]),
)}

Redis: ${f.redis.commands} commands, ${f.redis.perHttpRequest} per app request, ${f.redis.perQuestion} per question (${f.http.perQuestion} app requests per question, sign-ins and polls included; health checks and /metrics scrapes are not app requests, their commands are counted all the same). Top: ${Object.entries(
    f.redis.top,
  )
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}.

CPU seconds by process over the questions (${f.config.durationS} s + ${f.config.drainS} s; the machine has ${f.cpuSecondsByProcess.available} in that time, shared with other work): ${Object.entries(
    f.cpuSecondsByProcess,
  )
    .filter(([name]) => name !== 'available')
    .map(([name, value]) => `${name} ${value}`)
    .join(', ')}.

Load generator: ${f.loadGenerator
    .map(
      (g, index) =>
        `#${index}: ${g.signIns} sign-ins, ${g.httpCalls} HTTP calls, ${g.cpuSeconds} CPU s, event-loop lag p99 ${g.eventLoopLagP99Ms} ms (max ${g.eventLoopLagMaxMs}), peak RSS ${g.peakRssMb} MB`,
    )
    .join('; ')}.

![answer-time CDF](answer-cdf.png)
![over the run](timeline.png)
![quota use](quota.png)
`;
}

runScenario(async () => {
  mkdirSync(RESULTS, { recursive: true });
  const runs: Figures[] = [];
  for (const instances of INSTANCES) {
    for (const users of USERS) {
      runs.push(await runOnce(users, instances));
    }
  }
  const sweep: SweepPoint[] = runs.map((run) => ({
    users: run.config.users,
    instances: run.config.instances,
    p95Ms: run.answerTime.p95Ms ?? 0,
    held: run.held,
  }));
  writeFileSync(
    join(RESULTS, 'sweep.json'),
    `${JSON.stringify(
      runs.map(({ quotaSeries: _q, cpuSeries: _c, ...rest }) => rest),
      null,
      2,
    )}\n`,
  );
  await renderPng(
    sweepSpec(`Users vs answer time p95, ${TIER} tier, upstream ${LATENCY_MS} ms`, sweep, P95_LIMIT_MS),
    join(RESULTS, 'users-vs-p95.png'),
  );
  const rows = runs.map((run) => [
    `[${run.label}](${run.label}/summary.md)`,
    run.config.users,
    run.config.instances,
    run.questions.asked,
    run.questions.answered,
    run.questions.failed,
    run.signIns.failed,
    run.questions.unfinished,
    run.answerTime.p50Ms,
    run.answerTime.p95Ms,
    run.answerTime.p99Ms,
    run.timeToFirstWord.p95Ms,
    run.ownOverhead.p95Ms,
    run.upstream.rateLimited429,
    run.quota.bindingShareMean === null ? '–' : `${round(run.quota.bindingShareMean * 100)}%`,
    run.capacityRule.predictedUsersHeld,
    run.held ? 'yes' : 'no',
  ]);
  writeFileSync(
    join(RESULTS, 'README.md'),
    `# app-users ${stamp}

\`TIER=${TIER} USERS=${USERS.join(',')} INSTANCES=${INSTANCES.join(',')} DURATION_S=${DURATION_S} UPSTREAM_LATENCY_MS=${LATENCY_MS}\` · ${cpus().length} cores shared by everything · held = ${runs[0]?.heldRule ?? ''}

${table(
  [
    'run',
    'users',
    'instances',
    'asked',
    'answered',
    'failed',
    'sign-ins failed',
    'unfinished',
    'p50 ms',
    'p95 ms',
    'p99 ms',
    'first word p95 ms',
    'our overhead p95 ms',
    'upstream 429s',
    'quota use (binding limit)',
    'rule predicts',
    'held',
  ],
  rows,
)}

![users vs p95](users-vs-p95.png)
`,
  );
});
