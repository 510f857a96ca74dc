import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, isPortFree, pollUntil } from '../../../deploy/local/ports.js';
import { logFile, type RunState, readRunState } from '../../../deploy/local/stack.js';
import { testPrefix } from './test-backend.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SLOTS = 16;

export interface MakeResult {
  code: number | null;
  output: string;
}

export interface LocalStack {
  /** The environment `make` runs with: random ports, run directory and Redis prefix. */
  env: Record<string, string>;
  runDir: string;
  publicUrl: string;
  /** Runs `make <args>` in the repository with this stack's environment; rejects on a non-zero exit. */
  make(...args: string[]): Promise<MakeResult>;
  /** What PM2 and stack.json say, each instance's /readyz included; rejects when nothing runs. */
  state(): Promise<RunState>;
  /** Every port the stack may listen on. */
  ports(): number[];
}

/** `make` with node_modules taken as up to date: a test must never trigger `npm ci` under other tests. */
export function runMake(
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = 240_000,
): Promise<MakeResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('make', ['--no-print-directory', '-o', 'node_modules', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve({ code, output });
      } else {
        reject(new Error(`make ${args.join(' ')} exited with ${code}:\n${output}`));
      }
    });
  });
}

/** A base port with `count` free consecutive ports above it (the stack's instance slots). */
async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    // Below Linux's ephemeral range (32768-60999): there, a connection's local port can take a slot
    // between make up and the make scale that first binds it (stack-scale failed so once).
    const base = 20_000 + Math.floor(Math.random() * (32_768 - 20_000 - count));
    const ports = Array.from({ length: count }, (_, index) => base + index);
    if ((await Promise.all(ports.map((port) => isPortFree(port)))).every(Boolean)) {
      return base;
    }
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/**
 * The environment of a stack of its own: random ports, a temporary run
 * directory and a random Redis prefix, so it runs beside anything else.
 * Prometheus stays off unless asked for; the per-caller rate limit and the
 * Groq quota (free-tier defaults) are out of the way unless the test sets them.
 * Instances stop without a drain (make down then takes 1.5 s, not 4.5): a test
 * that scales in under traffic sets SHUTDOWN_DRAIN_MS to make up's own 3000.
 */
export async function localStackEnv(overrides: Record<string, string> = {}): Promise<Record<string, string>> {
  return {
    RUN_DIR: mkdtempSync(join(tmpdir(), 'focus-stack-')),
    PUBLIC_PORT: String(await freePort()),
    BACKEND_BASE_PORT: String(await freePortRange(SLOTS)),
    MAX_INSTANCES: String(SLOTS),
    CADDY_ADMIN_PORT: String(await freePort()),
    PROMETHEUS_PORT: String(await freePort()),
    PROMETHEUS_ENABLED: 'false',
    REDIS_PREFIX: testPrefix('stack'),
    MAX_REQUESTS_PER_MINUTE: '1000000',
    GROQ_RPM: '0',
    GROQ_TPM: '0',
    GROQ_RPD: '0',
    GROQ_TPD: '0',
    LOG_LEVEL: 'info',
    SHUTDOWN_DRAIN_MS: '0',
    ...overrides,
  };
}

/** `make up N=<instances>` with a fresh environment; resolves once it has returned. */
export async function startLocalStack(instances: number, overrides: Record<string, string> = {}): Promise<LocalStack> {
  const env = await localStackEnv(overrides);
  const stack: LocalStack = {
    env,
    runDir: env.RUN_DIR as string,
    publicUrl: `http://127.0.0.1:${env.PUBLIC_PORT}`,
    make: (...args) => runMake(args, env),
    async state() {
      const state = await readRunState(env);
      if (!state) {
        throw new Error(`no state in ${env.RUN_DIR}`);
      }
      return state;
    },
    ports() {
      const base = Number(env.BACKEND_BASE_PORT);
      return [
        Number(env.PUBLIC_PORT),
        Number(env.CADDY_ADMIN_PORT),
        Number(env.PROMETHEUS_PORT),
        ...Array.from({ length: SLOTS }, (_, index) => base + index),
      ];
    },
  };
  try {
    await stack.make('up', `N=${instances}`);
  } catch (error) {
    await stack.make('down').catch(() => undefined);
    throw error;
  }
  return stack;
}

/** The state once `check` holds. */
export async function waitForState(
  stack: LocalStack,
  check: (state: RunState) => boolean,
  timeoutMs: number,
  what: string,
): Promise<RunState> {
  let last: RunState | undefined;
  const ok = await pollUntil(async () => {
    last = await stack.state();
    return check(last);
  }, timeoutMs);
  if (!ok || !last) {
    throw new Error(`timed out waiting for ${what}; last state: ${JSON.stringify(last)}`);
  }
  return last;
}

export function readLog(stack: LocalStack, name: string): string {
  try {
    return readFileSync(logFile(stack.runDir, name), 'utf8');
  } catch {
    return '';
  }
}
