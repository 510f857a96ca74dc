import { readFileSync } from 'node:fs';
import { startBackendProcess } from '../../test/helpers/backend-process.js';
import {
  benchPrefix,
  deleteKeys,
  report,
  runMissLoad,
  runScenario,
  startMissSimulator,
  unlimitedBackendEnv,
} from '../harness.js';

/**
 * What one instance costs to run, from its TypeScript sources through tsx (as
 * production ran before the build) and from the compiled dist/ (as npm start
 * and the image run now): time from spawn to ready, RSS when idle, and peak
 * RSS during 10 s of cache misses (every question new) over 50 connections
 * against an upstream that answers at once.
 */
const SCENARIO = 'runtime-footprint';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const rssMb = (pid: number) => {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Math.round(Number(kb) / 1024);
};

async function measure(entry: 'source' | 'build', upstreamUrl: string) {
  const prefix = benchPrefix(SCENARIO);
  const started = performance.now();
  const backend = await startBackendProcess(unlimitedBackendEnv({ redisUrl: REDIS_URL, prefix, upstreamUrl }), {
    stdout: 'discard',
    entry,
  });
  const readyMs = Math.round(performance.now() - started);
  try {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const idleRssMb = rssMb(backend.child.pid as number);
    let peakRssMb = idleRssMb;
    const sampler = setInterval(() => {
      peakRssMb = Math.max(peakRssMb, rssMb(backend.child.pid as number));
    }, 200);
    const load = await runMissLoad(backend.url, 50);
    clearInterval(sampler);
    return {
      entry,
      readyMs,
      idleRssMb,
      peakRssMb,
      missesPerSecond: load.requestsPerSecond,
      p50Ms: load.p50Ms,
      p99Ms: load.p99Ms,
      non2xx: load.non2xx,
      statusCodes: load.statusCodes,
    };
  } finally {
    await backend.stop();
    await deleteKeys(REDIS_URL, prefix);
  }
}

runScenario(async () => {
  const simulator = await startMissSimulator(0);
  try {
    for (const entry of ['source', 'build'] as const) {
      report(SCENARIO, await measure(entry, simulator.url));
    }
  } finally {
    await simulator.close();
  }
});
