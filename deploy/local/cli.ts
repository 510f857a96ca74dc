import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../backend/src/config.js';
import { freePort, isPortFree, pollUntil, sleep } from './ports.js';
import { canStartPostgres, DEFAULT_DATABASE_URL, probePostgres, stopLeftoverPostgres } from './postgres.js';
import { aptInstall, ensureCommands, hasCommand } from './prerequisites.js';
import { endStackProcesses, isRunning, isStackProcess, stackProcesses } from './process-group.js';
import {
  type RunPaths,
  type RunState,
  readRunState,
  removeRunState,
  runPaths,
  writeDesiredInstances,
} from './run-state.js';
import { DEFAULT_REDIS_URL, needsSimulator, redactUrl, redisReachable } from './services.js';
import { DEFAULT_INSTANCES, loadStackSettings, type StackSettings, slotPort } from './settings.js';
import { formatStatus, instancesWord, shown } from './status-text.js';

/**
 * `make up|scale|down|status|logs` for the local stack:
 *   node --import tsx deploy/local/cli.ts up [N] | scale N | down | status | logs [--no-follow]
 * Settings come from the environment (see settings.ts and deploy/local/README.md).
 */

const STARTUP_TIMEOUT_MS = 180_000;
/** Caddy checks each slot every second; a ready instance is in rotation after the next check. */
const CADDY_HEALTH_INTERVAL_MS = 1000;

const write = (line = '') => process.stdout.write(`${line}\n`);

class UsageError extends Error {}

function parseCount(raw: string | undefined, settings: StackSettings, fallback?: number): number {
  const count = raw === undefined || raw === '' ? fallback : Number(raw);
  if (count === undefined || !Number.isInteger(count) || count < 1 || count > settings.maxInstances) {
    throw new UsageError(`N must be a whole number from 1 to ${settings.maxInstances} (MAX_INSTANCES), got ${raw}`);
  }
  return count;
}

function runningState(paths: RunPaths): RunState | undefined {
  const state = readRunState(paths);
  return state && isStackProcess(state.supervisorPid, paths.dir) ? state : undefined;
}

function tail(file: string, lines: number): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '';
}

/** A port the user did not fix may move to a free one; a fixed one must be free. */
async function choosePort(name: string, port: number, fixed: boolean): Promise<number> {
  if (await isPortFree(port)) {
    return port;
  }
  if (fixed) {
    throw new UsageError(`${name}=${port} is in use; free it or choose another port`);
  }
  return freePort();
}

async function checkPorts(settings: StackSettings): Promise<{ caddyAdminPort: number; prometheusPort: number }> {
  if (!(await isPortFree(settings.publicPort, settings.publicBind))) {
    throw new UsageError(`PUBLIC_PORT=${settings.publicPort} is in use; stop what uses it or set PUBLIC_PORT`);
  }
  for (let slot = 0; slot < settings.maxInstances; slot += 1) {
    const port = slotPort(settings, slot);
    if (!(await isPortFree(port))) {
      throw new UsageError(
        `port ${port} (instance slot ${slot + 1} of BACKEND_BASE_PORT=${settings.backendBasePort}…+${settings.maxInstances - 1}) is in use; set BACKEND_BASE_PORT`,
      );
    }
  }
  return {
    caddyAdminPort: await choosePort('CADDY_ADMIN_PORT', settings.caddyAdminPort, settings.caddyAdminPortFixed),
    prometheusPort: await choosePort('PROMETHEUS_PORT', settings.prometheusPort, settings.prometheusPortFixed),
  };
}

/**
 * The instances' settings, checked here as instance 1 will read them: a bad
 * one would otherwise show only as a crash loop until the supervisor gives up.
 */
function checkBackendConfig(settings: StackSettings): void {
  try {
    loadConfig({
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(slotPort(settings, 0)),
      LISTEN_FD: '3',
      // The supervisor points them at the simulator it starts.
      ...(needsSimulator(process.env) ? { GROQ_BASE_URL: 'http://127.0.0.1' } : {}),
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new UsageError(`The instances would not start; fix and run make up again:\n${error.problems.join('\n')}`);
    }
    throw error;
  }
}

/**
 * Whether the stack can have a PostgreSQL: one answering at DATABASE_URL (or
 * the default), else Debian's packages to start one from (installed here when
 * root, as for redis-server). The supervisor then uses or starts it (postgres.ts).
 */
async function checkPostgres(): Promise<void> {
  const explicit = process.env.DATABASE_URL;
  const wanted = explicit || DEFAULT_DATABASE_URL;
  const where = explicit ? `DATABASE_URL (${redactUrl(wanted)})` : DEFAULT_DATABASE_URL;
  const probe = await probePostgres(wanted);
  if (probe.state === 'ready') {
    return;
  }
  if (probe.state === 'refused' && explicit) {
    throw new UsageError(`PostgreSQL at ${where} refuses the stack: ${probe.reason}. Fix DATABASE_URL, or unset it.`);
  }
  write(
    probe.state === 'down'
      ? `PostgreSQL does not answer at ${where}: the stack starts one (Debian's cluster, or its own in RUN_DIR/postgres).`
      : `PostgreSQL at ${where} refuses user postgres (${probe.reason}): the stack starts its own in RUN_DIR/postgres.`,
  );
  if (canStartPostgres()) {
    return;
  }
  const installed = aptInstall(['postgresql'], write);
  if (installed.ok && canStartPostgres()) {
    return;
  }
  throw new UsageError(
    installed.ok || installed.attempted
      ? `${installed.ok ? 'apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb' : installed.instructions}`
      : `PostgreSQL is not installed: install it (sudo apt-get install -y postgresql), or set DATABASE_URL to a running one.`,
  );
}

async function chatAnswers(publicUrl: string): Promise<boolean> {
  const response = await fetch(`${publicUrl}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: 'Hello, I am checking that you are up.' }),
    signal: AbortSignal.timeout(15_000),
  });
  await response.body?.cancel();
  return response.status === 200;
}

async function up(settings: StackSettings, paths: RunPaths, rawCount: string | undefined): Promise<void> {
  const count = parseCount(rawCount, settings, DEFAULT_INSTANCES);
  const existing = readRunState(paths);
  if (existing && isStackProcess(existing.supervisorPid, paths.dir)) {
    write(
      `Already running in ${shown(paths.dir)} (${instancesWord(existing.instances.length)}). Use make scale N=… or make down.`,
    );
    return;
  }
  if (existing) {
    // A supervisor that died (killed, machine slept…) may have left children behind.
    await endStackProcesses(existing.supervisorPid, paths.dir, [], 10_000);
    removeRunState(paths);
  }

  checkBackendConfig(settings);
  const redisUrl = process.env.REDIS_URL || DEFAULT_REDIS_URL;
  const needs = ['caddy'];
  if (!(await redisReachable(redisUrl))) {
    write(
      `Redis does not answer at ${process.env.REDIS_URL ? 'REDIS_URL' : DEFAULT_REDIS_URL}: the stack starts its own redis-server.`,
    );
    needs.push('redis-server');
  }
  const installed = ensureCommands(needs, write);
  if (!installed.ok) {
    throw new UsageError(installed.instructions);
  }
  await checkPostgres();
  const ports = await checkPorts(settings);

  mkdirSync(paths.logs, { recursive: true });
  writeDesiredInstances(paths, count);
  const logFd = openSync(paths.log('supervisor'), 'a');
  const supervisor = spawn(
    process.execPath,
    ['--import', 'tsx', join(settings.repoRoot, 'deploy/local/supervisor.ts')],
    {
      cwd: settings.repoRoot,
      env: {
        ...process.env,
        RUN_DIR: paths.dir,
        CADDY_ADMIN_PORT: String(ports.caddyAdminPort),
        PROMETHEUS_PORT: String(ports.prometheusPort),
      },
      detached: true,
      stdio: ['ignore', logFd, logFd],
    },
  );
  closeSync(logFd);
  supervisor.unref();
  write(`Starting ${instancesWord(count)} behind Caddy (run directory ${shown(paths.dir)})…`);
  if (needsSimulator(process.env)) {
    write('GROQ_API_KEY is not set: the instances answer from the bundled Groq simulator.');
  }

  let state: RunState | undefined;
  const started = await pollUntil(async () => {
    state = readRunState(paths);
    if (state?.phase === 'failed' || (state === undefined && supervisor.exitCode !== null)) {
      return true;
    }
    if (state && !isRunning(state.supervisorPid)) {
      return true;
    }
    return state?.phase === 'running';
  }, STARTUP_TIMEOUT_MS);
  if (!started || state?.phase !== 'running') {
    write(tail(paths.log('supervisor'), 15));
    throw new UsageError(
      `The stack did not start: ${state?.error ?? 'timed out'}. Logs: ${paths.logs}. Run make down to clean up.`,
    );
  }
  if (!(await pollUntil(() => chatAnswers(state?.publicUrl ?? ''), 60_000, 500))) {
    throw new UsageError(`Caddy does not answer chat requests at ${state.publicUrl}; see ${paths.logs}`);
  }
  write(formatStatus(state, runPaths(settings.runDir).logs));
  write();
  write(
    `Try it:  curl -s ${state.publicUrl}/api/chat -H 'content-type: application/json' -d '{"message":"I cannot start my essay"}'`,
  );
  write('Then:    make status · make scale N=5 · make logs · make down');
}

async function scale(settings: StackSettings, paths: RunPaths, rawCount: string | undefined): Promise<void> {
  const count = parseCount(rawCount, settings);
  const state = runningState(paths);
  if (!state) {
    throw new UsageError(`Nothing is running in ${paths.dir}; start it with make up`);
  }
  writeDesiredInstances(paths, count);
  process.kill(state.supervisorPid, 'SIGHUP');
  write(`Scaling from ${state.instances.length} to ${instancesWord(count)}…`);
  let latest: RunState | undefined;
  const settled = await pollUntil(async () => {
    latest = readRunState(paths);
    return (
      latest?.desiredInstances === count &&
      latest.instances.length === count &&
      latest.instances.every((instance) => instance.status === 'ready')
    );
  }, STARTUP_TIMEOUT_MS);
  if (!settled || !latest) {
    throw new UsageError(`Scaling did not settle in time; see make status and ${paths.logs}`);
  }
  // New instances are in rotation once Caddy's next health check has seen them.
  await sleep(CADDY_HEALTH_INTERVAL_MS * 1.5);
  write(formatStatus(latest, runPaths(settings.runDir).logs));
}

async function down(paths: RunPaths): Promise<void> {
  const state = readRunState(paths);
  if (!state) {
    write(`Nothing is running in ${paths.dir}.`);
    return;
  }
  if (isStackProcess(state.supervisorPid, paths.dir)) {
    write('Stopping: instances drain, then Caddy, the simulator, Redis and PostgreSQL (if started here) stop…');
    process.kill(state.supervisorPid, 'SIGTERM');
    await pollUntil(async () => !isRunning(state.supervisorPid), 60_000, 100);
  }
  const known = [state.caddy?.pid, state.redis.pid, state.postgres?.pid, state.simulator?.pid, state.prometheus?.pid]
    .concat(state.instances.map((instance) => instance.pid))
    .filter((pid): pid is number => typeof pid === 'number');
  const leftovers = await endStackProcesses(state.supervisorPid, paths.dir, known, 10_000);
  if (leftovers.length > 0) {
    write(`Ended ${leftovers.length} process(es) the supervisor left behind.`);
  }
  const postgres = stopLeftoverPostgres(paths.dir, state.postgres);
  if (postgres) {
    write(postgres);
  }
  removeRunState(paths);
  write('Stopped.');
}

function logs(paths: RunPaths, follow: boolean): Promise<void> {
  const files = existsSync(paths.logs)
    ? readdirSync(paths.logs)
        .filter((name) => name.endsWith('.log'))
        .sort()
        .map((name) => join(paths.logs, name))
    : [];
  if (files.length === 0) {
    write(`No logs in ${paths.logs}.`);
    return Promise.resolve();
  }
  if (!hasCommand('tail')) {
    throw new UsageError(`tail is missing; the logs are in ${paths.logs}`);
  }
  const child = spawn('tail', ['-n', '20', ...(follow ? ['-F'] : []), ...files], { stdio: 'inherit' });
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, argument] = argv;
  const settings = loadStackSettings();
  const paths = runPaths(settings.runDir);
  switch (command) {
    case 'up':
      return up(settings, paths, argument);
    case 'scale':
      return scale(settings, paths, argument);
    case 'down':
      return down(paths);
    case 'status': {
      const state = runningState(paths);
      if (state) {
        write(formatStatus(state, runPaths(settings.runDir).logs));
      } else {
        // A supervisor killed with -9 leaves its children serving: say so, or "not running" would be a lie.
        const state = readRunState(paths);
        const left = state ? (stackProcesses(state.supervisorPid, paths.dir)?.length ?? 0) : 0;
        write(
          left > 0
            ? `Not running: the supervisor is gone, but ${left} process(es) of the stack still run. make down ends them.`
            : `Not running (${paths.dir}). Start it with make up.`,
        );
      }
      return;
    }
    case 'logs':
      return logs(paths, argument !== '--no-follow');
    default:
      throw new UsageError('usage: cli.ts up [N] | scale N | down | status | logs [--no-follow]');
  }
}

try {
  await main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${error instanceof UsageError ? error.message : (error as Error).stack}\n`);
  process.exitCode = 1;
}
