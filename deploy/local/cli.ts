import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../../backend/src/config.js';
import { alive, connectPm2, daemonPid, endProcesses, orphans, type Pm2, pm2Home } from './pm2.js';
import { freePort, httpOk, isPortFree, pollUntil, redactUrl, sleep } from './ports.js';
import { canStartPostgres, DEFAULT_DATABASE_URL, probePostgres, providePostgres, stopPostgres } from './postgres.js';
import { aptInstall, ensureCommands } from './prerequisites.js';
import { prometheusApp, prometheusSkipReason, writeTargets } from './prometheus.js';
import { DEFAULT_INSTANCES, loadStackSettings, type StackSettings, slotPort } from './settings.js';
import {
  caddyApp,
  envFile,
  instanceApp,
  instanceId,
  logFile,
  type RunState,
  readStack,
  redisApp,
  releaseSlot,
  removeStack,
  runState,
  type StackInfo,
  simulatorApp,
  slotsApp,
  slotsSocket,
  writeStack,
} from './stack.js';
import { formatStatus, instancesWord, shown } from './status-text.js';

/**
 * `make up|scale|down|status|logs` for the local stack, on PM2 (pm2.ts):
 *   node --import tsx deploy/local/cli.ts up [N] | scale N | down | status | logs [--no-follow]
 * Settings come from the environment (see settings.ts and deploy/local/README.md).
 */

const STARTUP_TIMEOUT_MS = 180_000;
/** Caddy checks each slot every second; a ready instance is in rotation after the next check. */
const CADDY_HEALTH_INTERVAL_MS = 1000;
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

const write = (line = '') => process.stdout.write(`${line}\n`);

class UsageError extends Error {}

function parseCount(raw: string | undefined, settings: StackSettings, fallback?: number): number {
  const count = raw === undefined || raw === '' ? fallback : Number(raw);
  if (count === undefined || !Number.isInteger(count) || count < 1 || count > settings.maxInstances) {
    throw new UsageError(`N must be a whole number from 1 to ${settings.maxInstances} (MAX_INSTANCES), got ${raw}`);
  }
  return count;
}

/** With no key and no base URL of their own, the instances share one simulator (one cache, one quota). */
const needsSimulator = (env: NodeJS.ProcessEnv) => !env.GROQ_API_KEY && !env.GROQ_API_KEY_FILE && !env.GROQ_BASE_URL;

async function redisReachable(url: string, password?: string): Promise<boolean> {
  const client = new Redis(url, { password, lazyConnect: true, connectTimeout: 1500, maxRetriesPerRequest: 0 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
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

async function checkPorts(settings: StackSettings): Promise<StackSettings> {
  if (!(await isPortFree(settings.publicPort, settings.publicBind))) {
    throw new UsageError(`PUBLIC_PORT=${settings.publicPort} is in use; stop what uses it or set PUBLIC_PORT`);
  }
  for (let slot = 0; slot < settings.maxInstances; slot += 1) {
    if (!(await isPortFree(slotPort(settings, slot)))) {
      throw new UsageError(
        `port ${slotPort(settings, slot)} (instance slot ${slot + 1} of BACKEND_BASE_PORT=${settings.backendBasePort}…+${settings.maxInstances - 1}) is in use; set BACKEND_BASE_PORT`,
      );
    }
  }
  return {
    ...settings,
    caddyAdminPort: await choosePort('CADDY_ADMIN_PORT', settings.caddyAdminPort, settings.caddyAdminPortFixed),
    prometheusPort: await choosePort('PROMETHEUS_PORT', settings.prometheusPort, settings.prometheusPortFixed),
  };
}

/** The instances' settings, checked as instance 1 will read them: a bad one would otherwise be a crash loop. */
function checkBackendConfig(settings: StackSettings): void {
  try {
    loadConfig({
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(slotPort(settings, 0)),
      // The runner points them at the simulator it starts.
      ...(needsSimulator(process.env) ? { GROQ_BASE_URL: 'http://127.0.0.1' } : {}),
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new UsageError(`The instances would not start; fix and run make up again:\n${error.problems.join('\n')}`);
    }
    throw error;
  }
}

/** Whether the stack can have a PostgreSQL: one answering, else Debian's packages to start one from. */
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
  const installed = canStartPostgres() ? { ok: true as const } : aptInstall(['postgresql'], write);
  if (!installed.ok || !canStartPostgres()) {
    throw new UsageError(
      installed.ok
        ? 'apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb'
        : `PostgreSQL is not installed: ${installed.instructions}, or set DATABASE_URL to a running one.`,
    );
  }
}

/** One secret for the whole stack, drawn once and kept in the run directory (mode 0600). */
function stackSecret(file: string): string {
  if (!existsSync(file)) {
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  }
  chmodSync(file, 0o600);
  return readFileSync(file, 'utf8').trim();
}

/** What every instance gets: the make up environment, plus what the whole stack must share. */
function instanceEnv(runDir: string): Record<string, string> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([, value]) => value !== undefined)) as Record<
    string,
    string
  >;
  // Longer than one Caddy health interval (1 s), so Caddy has seen an instance report not-ready before it stops listening.
  env.SHUTDOWN_DRAIN_MS ||= '3000';
  // One key for the whole stack, kept like the token secret: it names callers in Redis (job owners,
  // counters), and Redis keeps its data across a make down / make up.
  if (!env.LOG_CALLER_SALT && !env.LOG_CALLER_SALT_FILE) {
    env.LOG_CALLER_SALT = stackSecret(join(runDir, 'log-caller-salt'));
  }
  // Every instance signs and checks device tokens with one key, kept so tokens outlive a make down / make up.
  if (!env.AUTH_JWT_SECRET && !env.AUTH_JWT_SECRET_FILE) {
    env.AUTH_JWT_SECRET = stackSecret(join(runDir, 'auth-jwt-secret'));
  }
  return env;
}

async function waitFor(what: string, check: () => Promise<boolean>, settings: StackSettings, ms = 60_000) {
  if (!(await pollUntil(check, ms, 200))) {
    throw new UsageError(`${what} did not start; see ${shown(join(settings.runDir, 'logs'))}/`);
  }
}

/** REDIS_URL (or the default) when it answers, else a redis-server of our own under PM2. */
async function provideRedis(pm2: Pm2, settings: StackSettings, env: Record<string, string>) {
  const wanted = env.REDIS_URL || DEFAULT_REDIS_URL;
  const password =
    env.REDIS_PASSWORD || (env.REDIS_PASSWORD_FILE && readFileSync(env.REDIS_PASSWORD_FILE, 'utf8').trim());
  // With REDIS_SENTINELS the instances find the primary themselves.
  if (env.REDIS_SENTINELS || (await redisReachable(wanted, password || undefined))) {
    return { url: wanted, managed: false };
  }
  write(`Redis does not answer at ${redactUrl(wanted)}: the stack starts its own redis-server.`);
  const port = await freePort();
  const config: string[] = [];
  if (password) {
    // The instances send REDIS_PASSWORD: ours asks for it, from a file (argv shows in ps).
    const file = join(settings.runDir, 'redis.conf');
    writeFileSync(file, `requirepass "${password.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"\n`, { mode: 0o600 });
    config.push(file);
  }
  await pm2.start(redisApp(settings.runDir, port, config, env.REDIS_MAXMEMORY));
  const url = `redis://127.0.0.1:${port}`;
  await waitFor('redis-server', () => redisReachable(url, password || undefined), settings);
  return { url, managed: true };
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

async function status(pm2: Pm2, settings: StackSettings): Promise<RunState> {
  const state = await runState(pm2, settings, daemonPid(settings.runDir) ?? 0);
  if (!state) {
    throw new UsageError(`Nothing is running in ${settings.runDir}; start it with make up`);
  }
  return state;
}

const allReady = (state: RunState, count: number) =>
  state.instances.length === count && state.instances.every((instance) => instance.status === 'ready');

async function startStack(pm2: Pm2, base: StackSettings, count: number): Promise<void> {
  const settings = await checkPorts(base);
  const env = instanceEnv(settings.runDir);
  const redis = await provideRedis(pm2, settings, env);
  env.REDIS_URL = redis.url;
  const postgres = await providePostgres({ runDir: settings.runDir, say: write }, env);
  env.DATABASE_URL = postgres.url;
  let simulator: StackInfo['simulator'] = null;
  if (needsSimulator(env)) {
    write('GROQ_API_KEY is not set: the instances answer from the bundled Groq simulator.');
    const port = await freePort();
    await pm2.start(simulatorApp(settings, port, env));
    simulator = { url: `http://127.0.0.1:${port}` };
    env.GROQ_BASE_URL = simulator.url;
    await waitFor('The Groq simulator', () => httpOk(`${simulator?.url}/healthz`), settings);
  }
  writeFileSync(envFile(settings.runDir), JSON.stringify(env), { mode: 0o600 });
  const skip = prometheusSkipReason(settings);
  const host = settings.publicBind === '0.0.0.0' ? '127.0.0.1' : settings.publicBind;
  const info: StackInfo = {
    publicUrl: `http://${host}:${settings.publicPort}`,
    desiredInstances: count,
    maxInstances: settings.maxInstances,
    redis,
    postgres,
    simulator,
    caddy: { adminUrl: `http://127.0.0.1:${settings.caddyAdminPort}` },
    prometheus: skip ? null : { url: `http://127.0.0.1:${settings.prometheusPort}` },
  };
  writeStack(settings.runDir, info);
  rmSync(slotsSocket(settings.runDir), { force: true });
  await pm2.start(slotsApp(settings.runDir));
  await waitFor('The slot socket holder (slots.py)', async () => existsSync(slotsSocket(settings.runDir)), settings);
  for (let slot = 0; slot < count; slot += 1) {
    await pm2.start(instanceApp(settings, slot, env));
  }
  await pm2.start(caddyApp(settings, env));
  await waitFor('Caddy', () => httpOk(`${info.caddy.adminUrl}/config/`), settings);
  if (skip) {
    write(`Prometheus not started: ${skip}.`);
  } else {
    await pm2.start(prometheusApp(settings, count));
    await waitFor('Prometheus', () => httpOk(`${info.prometheus?.url}/-/ready`), settings);
  }
  await waitFor(
    'The instances',
    async () => allReady(await status(pm2, settings), count),
    settings,
    STARTUP_TIMEOUT_MS,
  );
  await waitFor('Caddy (answering chat)', () => chatAnswers(info.publicUrl), settings);
}

async function up(settings: StackSettings, rawCount: string | undefined): Promise<void> {
  const count = parseCount(rawCount, settings, DEFAULT_INSTANCES);
  if (daemonPid(settings.runDir) && readStack(settings.runDir)) {
    const pm2 = await connectPm2(settings.runDir);
    const state = await status(pm2, settings).finally(() => pm2.disconnect());
    write(
      `Already running in ${shown(settings.runDir)} (${instancesWord(state.instances.length)}). Use make scale N=… or make down.`,
    );
    return;
  }
  // What a daemon killed with -9 left behind, if anything.
  await endProcesses(orphans(settings.runDir), 10_000);
  checkBackendConfig(settings);
  const needs = [
    'caddy',
    'python3',
    ...((await redisReachable(process.env.REDIS_URL || DEFAULT_REDIS_URL)) ? [] : ['redis-server']),
  ];
  const installed = ensureCommands(needs, write);
  if (!installed.ok) {
    throw new UsageError(installed.instructions);
  }
  await checkPostgres();
  const noPrometheus = prometheusSkipReason(settings);
  if (noPrometheus && settings.prometheus === 'true') {
    throw new UsageError(`PROMETHEUS_ENABLED=true, but ${noPrometheus}`);
  }
  mkdirSync(settings.runDir, { recursive: true });
  write(`Starting ${instancesWord(count)} behind Caddy (run directory ${shown(settings.runDir)})…`);
  const pm2 = await connectPm2(settings.runDir);
  try {
    await startStack(pm2, settings, count);
    write(formatStatus(await status(pm2, settings), settings.runDir));
  } catch (error) {
    pm2.disconnect();
    write(`The stack did not start: ${(error as Error).message}. Stopping what started…`);
    await down(settings);
    throw new UsageError(`make up failed; the logs are in ${join(settings.runDir, 'logs')}`);
  }
  pm2.disconnect();
  const url = readStack(settings.runDir)?.publicUrl;
  write();
  write(
    `Try it:  curl -s ${url}/api/chat -H 'content-type: application/json' -d '{"message":"I cannot start my essay"}'`,
  );
  write('Then:    make status · make scale N=5 · make logs · make down');
}

async function scale(settings: StackSettings, rawCount: string | undefined): Promise<void> {
  const count = parseCount(rawCount, settings);
  const info = readStack(settings.runDir);
  if (!info || !daemonPid(settings.runDir)) {
    throw new UsageError(`Nothing is running in ${settings.runDir}; start it with make up`);
  }
  const stackSettings = { ...settings, caddyAdminPort: Number(new URL(info.caddy.adminUrl).port) };
  const env = JSON.parse(readFileSync(envFile(settings.runDir), 'utf8')) as Record<string, string>;
  const pm2 = await connectPm2(settings.runDir);
  try {
    const before = await status(pm2, stackSettings);
    write(`Scaling from ${before.instances.length} to ${instancesWord(count)}…`);
    // Prometheus stops scraping the removed ones before they go.
    writeTargets(stackSettings, count);
    const removed = before.instances.filter((instance) => instance.slot > count);
    await Promise.all(removed.map((instance) => releaseSlot(settings.runDir, instance.port)));
    // PM2 sends SIGTERM: the instance reports not-ready for SHUTDOWN_DRAIN_MS, finishes what it holds, exits.
    await Promise.all(removed.map((instance) => pm2.remove(instance.id)));
    for (let slot = 0; slot < count; slot += 1) {
      if (!before.instances.some((instance) => instance.id === instanceId(slot))) {
        await pm2.start(instanceApp(stackSettings, slot, env));
      }
    }
    writeStack(settings.runDir, { ...info, desiredInstances: count });
    const settled = () => status(pm2, stackSettings).then((state) => allReady(state, count));
    if (!(await pollUntil(settled, STARTUP_TIMEOUT_MS))) {
      throw new UsageError(`Scaling did not settle in time; see make status and ${join(settings.runDir, 'logs')}`);
    }
    // New instances are in rotation once Caddy's next health check has seen them.
    await sleep(CADDY_HEALTH_INTERVAL_MS * 1.5);
    write(formatStatus(await status(pm2, stackSettings), settings.runDir));
  } finally {
    pm2.disconnect();
  }
}

async function down(settings: StackSettings): Promise<void> {
  const { runDir } = settings;
  const info = readStack(runDir);
  const daemon = daemonPid(runDir);
  if (!info && !daemon) {
    write(`Nothing is running in ${runDir}.`);
    return;
  }
  if (daemon) {
    write('Stopping: instances drain, then Caddy, the simulator, Redis and PostgreSQL (if started here) stop…');
    const pm2 = await connectPm2(runDir);
    const names = (await pm2.list()).map((entry) => entry.name ?? '');
    const last = ['simulator', 'redis'];
    await Promise.all(names.filter((name) => !last.includes(name)).map((name) => pm2.remove(name)));
    await Promise.all(names.filter((name) => last.includes(name)).map((name) => pm2.remove(name)));
    await pm2.kill().catch(() => undefined);
    pm2.disconnect();
    await pollUntil(async () => !alive(daemon), 10_000, 100);
  }
  const leftovers = orphans(runDir);
  if (leftovers.length > 0) {
    await endProcesses(leftovers, 10_000);
    write(`Ended ${leftovers.length} process(es) the PM2 daemon left behind.`);
  }
  const postgres = stopPostgres(runDir, info?.postgres);
  if (postgres) {
    write(postgres);
  }
  removeStack(runDir);
  write('Stopped.');
}

function logs(settings: StackSettings, follow: boolean): Promise<void> {
  const dir = join(settings.runDir, 'logs');
  const files = existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith('.log')) : [];
  if (files.length === 0) {
    write(`No logs in ${dir}.`);
    return Promise.resolve();
  }
  // PM2 prefixes each line with its process; without a daemon (stopped stack), tail the files.
  const [command, args] = daemonPid(settings.runDir)
    ? [
        process.execPath,
        [
          join(settings.repoRoot, 'node_modules/pm2/bin/pm2'),
          'logs',
          '--lines',
          '20',
          ...(follow ? [] : ['--nostream']),
        ],
      ]
    : [
        'tail',
        ['-n', '20', ...(follow ? ['-F'] : []), ...files.map((name) => logFile(settings.runDir, name.slice(0, -4)))],
      ];
  const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, PM2_HOME: pm2Home(settings.runDir) } });
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function showStatus(settings: StackSettings): Promise<void> {
  if (daemonPid(settings.runDir) && readStack(settings.runDir)) {
    const pm2 = await connectPm2(settings.runDir);
    try {
      write(formatStatus(await status(pm2, settings), settings.runDir));
    } finally {
      pm2.disconnect();
    }
    return;
  }
  // A daemon killed with -9 leaves its processes serving: say so, or "not running" would be a lie.
  const left = orphans(settings.runDir).length;
  write(
    left > 0
      ? `Not running: the PM2 daemon is gone, but ${left} process(es) of the stack still run. make down ends them.`
      : `Not running (${settings.runDir}). Start it with make up.`,
  );
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, argument] = argv;
  const settings = loadStackSettings();
  // Every process of the stack (the PM2 daemon too) carries the absolute run directory: see orphans().
  process.env.RUN_DIR = settings.runDir;
  // PM2 stops with SIGINT unless told otherwise; the instances drain on SIGTERM.
  process.env.PM2_KILL_SIGNAL = 'SIGTERM';
  switch (command) {
    case 'up':
      return up(settings, argument);
    case 'scale':
      return scale(settings, argument);
    case 'down':
      return down(settings);
    case 'status':
      return showStatus(settings);
    case 'logs':
      return logs(settings, argument !== '--no-follow');
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
// PM2's client keeps sockets open after disconnect and killDaemon.
process.exit();
