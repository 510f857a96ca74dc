import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { npmStartArgs } from '../../../deploy/local/apps.js';
import { startBackendProcess, waitFor } from '../../test/helpers/backend-process.js';
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
 * even when the machine is busy, where the rate does not). Idle RSS is split
 * into file-backed pages (node's own binary, shared by every node process),
 * anonymous memory and, of that, what V8's heap has committed and uses (from
 * /metrics). Two more lines give the floor under any instance: node alone, and
 * node with the compiled modules imported (every library and our code, no
 * connection, no server), both with npm start's flags.
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

const MB = 1024 * 1024;

/** Of a process's RSS, the file-backed pages (its binary and libraries) and the anonymous ones, in MB (smaps_rollup). */
const rssParts = (pid: number) => {
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1]);
  return {
    fileBackedMb: Math.round((kb('Rss') - kb('Anonymous')) / 1024),
    anonymousMb: Math.round(kb('Anonymous') / 1024),
  };
};

/** V8's heap as the instance reports it on /metrics (prom-client's default metrics): committed and used, in MB. */
async function v8Heap(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const gauge = (name: string) => Math.round(Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1]) / MB);
  return { v8HeapMb: gauge('nodejs_heap_size_total_bytes'), v8HeapUsedMb: gauge('nodejs_heap_size_used_bytes') };
}

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
    const idle = { ...rssParts(pid), ...(await v8Heap(backend.url)) };
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
      idle,
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

/**
 * The floor: node with npm start's flags, alone or after importing the compiled
 * runtime (what every instance loads before it opens anything), 3 s after the
 * import as an instance's idle figure is. readyMs is the time to the import's end.
 */
async function floor(what: 'node-alone' | 'imports-only') {
  const imported = what === 'imports-only' ? "await import('./dist/src/runtime.js');" : '';
  const script = `${imported} console.log('imported'); setTimeout(() => console.log(JSON.stringify(process.memoryUsage())), 3000); setInterval(() => {}, 1 << 30);`;
  const started = performance.now();
  const child = spawn(process.execPath, [...npmStartArgs().slice(0, -1), '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  try {
    await waitFor(async () => output.includes('imported'), 30_000, what);
    const readyMs = Math.round(performance.now() - started);
    await waitFor(async () => output.includes('heapTotal'), 10_000, `${what} memory`);
    const pid = child.pid as number;
    const usage = JSON.parse(output.slice(output.indexOf('{'))) as NodeJS.MemoryUsage;
    return {
      run: what,
      readyMs,
      idleRssMb: rssMb(pid),
      idle: {
        ...rssParts(pid),
        v8HeapMb: Math.round(usage.heapTotal / MB),
        v8HeapUsedMb: Math.round(usage.heapUsed / MB),
      },
      loadAverage: Math.round((loadavg()[0] ?? 0) * 10) / 10,
    };
  } finally {
    child.kill('SIGKILL');
  }
}

runScenario(async () => {
  for (const what of ['node-alone', 'imports-only'] as const) {
    report(SCENARIO, await floor(what));
  }
  const simulator = await startMissSimulator(0);
  try {
    for (const run of ['source', 'build', 'start'] as const) {
      report(SCENARIO, await measure(run, simulator.url));
    }
  } finally {
    await simulator.close();
  }
});
