import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { npmStartArgs } from '../../../deploy/local/apps.js';
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
 * What one instance costs to run: from its TypeScript sources through tsx (as
 * production ran before the build), from the compiled dist/ with node's
 * defaults, and as `npm start` and the image run it (dist/ with the V8 flags
 * of package.json's start script): time from spawn to ready, RSS when idle,
 * and during 10 s of cache misses (every question new) over 50 connections
 * against an upstream that answers at once: peak RSS, the instance's CPU time
 * and write system calls per miss (/proc counters: they say what a miss costs
 * even when the machine is busy, where the rate does not).
 */
const SCENARIO = 'runtime-footprint';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const rssMb = (pid: number) => {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Math.round(Number(kb) / 1024);
};

/** User plus system CPU time of a process, in ms (/proc/<pid>/stat utime and stime, at 100 ticks a second). */
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) * 10;
};

/** Write-family system calls a process made so far (/proc/<pid>/io syscw): one per socket write. */
const writeCalls = (pid: number) => Number(/syscw: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);

type Run = 'source' | 'build' | 'start';

async function measure(run: Run, upstreamUrl: string) {
  const prefix = benchPrefix(SCENARIO);
  const started = performance.now();
  const backend = await startBackendProcess(unlimitedBackendEnv({ redisUrl: REDIS_URL, prefix, upstreamUrl }), {
    stdout: 'discard',
    entry: run,
    // Ready time is what this measures: on a busy machine tsx takes more than the helper's 20 s.
    readyTimeoutMs: 90_000,
  });
  const readyMs = Math.round(performance.now() - started);
  try {
    const pid = backend.child.pid as number;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const idleRssMb = rssMb(pid);
    let peakRssMb = idleRssMb;
    const sampler = setInterval(() => {
      peakRssMb = Math.max(peakRssMb, rssMb(pid));
    }, 200);
    const [cpuBefore, writesBefore] = [cpuMs(pid), writeCalls(pid)];
    const load = await runMissLoad(backend.url, 50);
    clearInterval(sampler);
    const perMiss = (total: number) => Math.round((total / Math.max(1, load.requests)) * 100) / 100;
    return {
      run,
      nodeFlags: run === 'start' ? npmStartArgs().slice(0, -1).join(' ') : undefined,
      readyMs,
      idleRssMb,
      peakRssMb,
      missesPerSecond: load.requestsPerSecond,
      cpuMsPerMiss: perMiss(cpuMs(pid) - cpuBefore),
      writeCallsPerMiss: perMiss(writeCalls(pid) - writesBefore),
      p50Ms: load.p50Ms,
      p99Ms: load.p99Ms,
      non2xx: load.non2xx,
      statusCodes: load.statusCodes,
      loadAverage: Math.round((loadavg()[0] ?? 0) * 10) / 10,
    };
  } finally {
    await backend.stop();
    await deleteKeys(REDIS_URL, prefix);
  }
}

runScenario(async () => {
  const simulator = await startMissSimulator(0);
  try {
    for (const run of ['source', 'build', 'start'] as const) {
      report(SCENARIO, await measure(run, simulator.url));
    }
  } finally {
    await simulator.close();
  }
});
