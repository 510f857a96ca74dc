import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { npmStartArgs } from '../../../deploy/local/apps.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A free loopback TCP port (bound, read, released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface BackendProcess {
  child: ChildProcess;
  port: number;
  url: string;
  instanceId: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM and wait for exit (graceful path). */
  stop(): Promise<number | null>;
  /** SIGKILL: the instance dies with whatever it holds. */
  kill(): Promise<void>;
}

/**
 * Polls `check` until it is true. `failFast` is asked first on every round: when it
 * returns a reason (e.g. the process died), waiting stops at once with that reason.
 */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  failFast?: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const failure = failFast?.();
    if (failure !== undefined) {
      throw new Error(`${failure} while waiting for ${what}`);
    }
    if (await check().catch(() => false)) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

const BUILD_ENTRY = 'dist/src/main.js';

/** The test runner's environment minus the upstream settings: a test opts in to an upstream explicitly. */
function inheritedEnv(): NodeJS.ProcessEnv {
  const { GROQ_API_KEY: _key, GROQ_API_KEY_FILE: _keyFile, GROQ_BASE_URL: _baseUrl, ...rest } = process.env;
  return rest;
}

export interface BackendProcessOptions {
  /**
   * keep (default): stdout and stderr are collected for output(). discard: stdout
   * (the access log) goes to /dev/null, so a benchmark does not measure its own
   * log collection; stderr is still collected.
   */
  stdout?: 'keep' | 'discard';
  /**
   * source (default): backend/src/main.ts through tsx, so a test sees the code as
   * it is now. build: dist/src/main.js with node's defaults (make test and make
   * bench build it first). start: dist/src/main.js with the V8 flags of `npm
   * start`, which the image's CMD repeats.
   */
  entry?: 'source' | 'build' | 'start';
  /** How long /readyz may take to answer 200 (20 s by default; tsx compiling on a busy machine takes longer). */
  readyTimeoutMs?: number;
}

/** Starts a backend as a real process on a free port and resolves once /readyz answers 200. */
export async function startBackendProcess(
  env: Record<string, string>,
  options: BackendProcessOptions = {},
): Promise<BackendProcess> {
  const port = Number(env.PORT ?? (await freePort()));
  const instanceId = env.INSTANCE_ID ?? `proc-${port}`;
  const entry = options.entry ?? 'source';
  if (entry !== 'source' && !existsSync(join(REPO_ROOT, BUILD_ENTRY))) {
    throw new Error(`${BUILD_ENTRY} is missing: run npm run build (make test and make bench do)`);
  }
  const args = {
    source: ['--import', 'tsx', 'backend/src/main.ts'],
    build: [BUILD_ENTRY],
    start: npmStartArgs(),
  }[entry];
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: {
      ...inheritedEnv(),
      LOG_LEVEL: 'info',
      SHUTDOWN_DRAIN_MS: '0',
      ...env,
      PORT: String(port),
      INSTANCE_ID: instanceId,
    },
    stdio: ['ignore', options.stdout === 'discard' ? 'ignore' : 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      async () => (await fetch(`${url}/readyz`)).status === 200,
      options.readyTimeoutMs ?? 20_000,
      `backend on ${url}`,
      () =>
        child.exitCode !== null || child.signalCode !== null
          ? `backend exited early (code ${child.exitCode}, signal ${child.signalCode})`
          : undefined,
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${output}`);
  }
  return {
    child,
    port,
    url,
    instanceId,
    output: () => output,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
      }
      return exited;
    },
    async kill() {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}
