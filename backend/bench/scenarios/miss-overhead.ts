import { loadavg } from 'node:os';
import { startBackendProcess } from '../../test/helpers/backend-process.js';
import {
  benchPrefix,
  deleteKeys,
  report,
  runLoad,
  runMissLoad,
  runScenario,
  startMissSimulator,
  unlimitedBackendEnv,
} from '../harness.js';

/**
 * What our cache-miss path adds to an upstream call: 50 connections for 10 s
 * against the Groq simulator answering in 50 ms, first straight to it, then
 * through one compiled instance's POST /api/chat with a new question each
 * time (every request a miss that goes upstream). Overhead = our percentile
 * minus the direct one; the goals are p50 < 2 ms and p99 < 10 ms. On a
 * shared 2-core machine the load generator, the simulator and the instance
 * compete for CPU: read the figures beside the machine's load.
 */
const SCENARIO = 'miss-overhead';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CONNECTIONS = 50;
const UPSTREAM_LATENCY_MS = 50;

runScenario(async () => {
  const simulator = await startMissSimulator(UPSTREAM_LATENCY_MS);
  const prefix = benchPrefix(SCENARIO);
  const backend = await startBackendProcess(
    unlimitedBackendEnv({ redisUrl: REDIS_URL, prefix, upstreamUrl: simulator.url }),
    { stdout: 'discard', entry: 'build' },
  );
  try {
    let index = 0;
    const direct = await runLoad({
      url: simulator.url,
      path: '/openai/v1/chat/completions',
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench-key' },
      body: JSON.stringify({ model: 'llama-3.1-8b-instant', messages: [{ role: 'user', content: 'warm-up' }] }),
      setupRequest: (request) => ({
        ...request,
        body: JSON.stringify({
          model: 'llama-3.1-8b-instant',
          messages: [{ role: 'user', content: `Direct question ${index++}` }],
        }),
      }),
      durationSeconds: 10,
      connections: CONNECTIONS,
    });
    const ours = await runMissLoad(backend.url, CONNECTIONS);
    report(SCENARIO, {
      connections: CONNECTIONS,
      upstreamLatencyMs: UPSTREAM_LATENCY_MS,
      direct: { rps: direct.requestsPerSecond, p50Ms: direct.p50Ms, p99Ms: direct.p99Ms, non2xx: direct.non2xx },
      miss: { rps: ours.requestsPerSecond, p50Ms: ours.p50Ms, p99Ms: ours.p99Ms, non2xx: ours.non2xx },
      overheadP50Ms: ours.p50Ms - direct.p50Ms,
      overheadP99Ms: ours.p99Ms - direct.p99Ms,
      loadAverage: Math.round((loadavg()[0] ?? 0) * 10) / 10,
    });
  } finally {
    await backend.stop();
    await simulator.close();
    await deleteKeys(REDIS_URL, prefix);
  }
});
