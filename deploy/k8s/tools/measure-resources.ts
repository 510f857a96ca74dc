import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { deleteKeys } from '../../../backend/bench/harness.js';
import { startGroqSimulator } from '../../../backend/sim/groq-simulator.js';
import { startBackendProcess } from '../../../backend/test/helpers/backend-process.js';

/**
 * Where the backend Deployment's requests and limits come from: one backend
 * process (as the image runs it: dist/ with npm start's V8 flags), its upstream a local
 * Groq simulator, driven on loopback through five phases (idle, cache hits,
 * cache misses, queued jobs, streams); it prints the
 * process's RSS, peak RSS (VmHWM) and CPU (cores) per phase, and how much the
 * process wrote to its TMPDIR (the /tmp emptyDir).
 *
 *   npx tsx deploy/k8s/tools/measure-resources.ts     (MEASURE_PHASE_S=20 by default)
 *
 * The load generator shares the machine's cores with the process, so the CPU
 * figures are a floor of what one instance can use, not a ceiling.
 */
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PHASE_S = Number(process.env.MEASURE_PHASE_S ?? 20);
const TICKS_PER_SECOND = 100;

interface Sample {
  at: number;
  cpuTicks: number;
  rssKiB: number;
  hwmKiB: number;
}

function sample(pid: number): Sample {
  // Fields after the command name, which is in parentheses and may hold spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return {
    at: Date.now(),
    cpuTicks: Number(fields[11]) + Number(fields[12]),
    rssKiB: kib('VmRSS'),
    hwmKiB: kib('VmHWM'),
  };
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(path) : statSync(path).size;
  }
  return total;
}

async function phase(pid: number, name: string, load: () => Promise<object>) {
  const samples: Sample[] = [sample(pid)];
  const timer = setInterval(() => samples.push(sample(pid)), 500);
  const result = await load();
  clearInterval(timer);
  samples.push(sample(pid));
  const first = samples[0] as Sample;
  const last = samples.at(-1) as Sample;
  let peakCores = 0;
  for (let i = 1; i < samples.length; i += 1) {
    const [a, b] = [samples[i - 1] as Sample, samples[i] as Sample];
    if (b.at > a.at) {
      peakCores = Math.max(peakCores, (b.cpuTicks - a.cpuTicks) / TICKS_PER_SECOND / ((b.at - a.at) / 1000));
    }
  }
  const report = {
    phase: name,
    meanCores: Number(((last.cpuTicks - first.cpuTicks) / TICKS_PER_SECOND / ((last.at - first.at) / 1000)).toFixed(2)),
    peakCores: Number(peakCores.toFixed(2)),
    rssMiB: Math.round(last.rssKiB / 1024),
    maxRssMiB: Math.round(Math.max(...samples.map((s) => s.rssKiB)) / 1024),
    peakRssSinceStartMiB: Math.round(last.hwmKiB / 1024),
    ...result,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

function load(url: string, path: string, connections: number, fresh: boolean): () => Promise<object> {
  return async () => {
    let n = 0;
    const result = await autocannon({
      url,
      duration: PHASE_S,
      connections,
      requests: [
        {
          method: 'POST',
          path,
          headers: { 'content-type': 'application/json' },
          // A new question each time is a cache miss: the whole upstream path runs.
          setupRequest: (request) => {
            n += 1;
            const message = fresh
              ? `I keep putting off task number ${n} of my list. How do I start?`
              : 'I have 20 minutes and three overdue tasks. Where do I start?';
            return { ...request, body: JSON.stringify({ message }) };
          },
        },
      ],
    });
    return {
      requestsPerSecond: Math.round(result.requests.average),
      non2xx: result.non2xx,
      errors: result.errors,
      statusCodes: result.statusCodeStats,
    };
  };
}

// Limits no run reaches: at its defaults the simulator advertises a 1,000,000-token minute, which the
// instance learns and obeys (answering 503 once ~5,000 calls have spent it).
const simulator = await startGroqSimulator({ latencyMs: 300, jitterMs: 200, chunkDelayMs: 40, tpm: 1e12, rpd: 1e9 });
const prefix = `measure:${Date.now()}:`;
const tmp = mkdtempSync(join(tmpdir(), 'focus-measure-'));
const backend = await startBackendProcess(
  {
    NODE_ENV: 'production',
    REDIS_URL,
    REDIS_PREFIX: prefix,
    GROQ_BASE_URL: simulator.url,
    GROQ_API_KEY: 'measure-key',
    GROQ_RPM: '0',
    GROQ_TPM: '0',
    GROQ_RPD: '0',
    GROQ_TPD: '0',
    MAX_REQUESTS_PER_MINUTE: '1000000000',
    USER_REQUESTS_PER_MINUTE: '1000000000',
    COALESCE_WAIT_MS: '0',
    TMPDIR: tmp,
  },
  { stdout: 'discard', entry: 'start' },
);
const pid = backend.child.pid as number;
try {
  await phase(pid, 'idle', async () => {
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    return {};
  });
  await phase(pid, 'cache-hits, 50 connections', load(backend.url, '/api/chat', 50, false));
  await phase(pid, 'cache-misses, 100 connections', load(backend.url, '/api/chat', 100, true));
  // Queued jobs: BullMQ's producer and worker on top of the chat path (202s, then 503 queue_full past
  // QUEUE_MAX_WAITING, both cheap answers).
  await phase(pid, 'queue, 50 connections', load(backend.url, '/api/chat/queue', 50, true));
  // Server-sent events: each answer streamed piece by piece (a chunk every 40 ms), 200 at once.
  await phase(pid, 'streams, 200 connections', load(backend.url, '/api/chat/stream', 200, true));
  process.stdout.write(
    `${JSON.stringify({ tmpdirBytes: dirBytes(tmp), upstreamCalls: simulator.stats().requests })}\n`,
  );
} finally {
  await backend.stop();
  await simulator.close();
  await deleteKeys(REDIS_URL, prefix);
  rmSync(tmp, { recursive: true, force: true });
}
