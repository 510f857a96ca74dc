import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Redis } from 'ioredis';
import type { StartOptions } from 'pm2';
import { ConfigError, loadConfig } from '../../backend/src/config.js';
import { sleep } from '../../backend/src/shared/sleep.js';
import * as apps from './apps.js';
import { freePort, httpOk, isPortFree, pollUntil } from './ports.js';
import { DEFAULT_DATABASE_URL, ownCluster, probePostgres } from './postgres.js';
import type { Env, Pm2, RunState, StackSettings } from './stack.js';
import * as stack from './stack.js';

/** make up [N] | scale N | down | status: `node --import tsx deploy/local/cli.ts <command>` (see README.md). */

class UsageError extends Error {}
const write = (line = ''): void => void process.stdout.write(`${line}\n`);
const shown = (path: string) => (relative('', path).startsWith('..') ? path : relative('', path) || '.');
const plural = (count: number) => `${count} instance${count === 1 ? '' : 's'}`;

function parseCount(raw: string | undefined, settings: StackSettings, fallback?: number): number {
  const count = raw ? Number(raw) : fallback;
  if (!count || !Number.isInteger(count) || count < 1 || count > settings.MAX_INSTANCES) {
    throw new UsageError(`N must be a whole number from 1 to ${settings.MAX_INSTANCES} (MAX_INSTANCES), got ${raw}`);
  }
  return count;
}

async function redisAnswers(url: string, password: string): Promise<boolean> {
  const redis = new Redis(url, { password: password || undefined, lazyConnect: true, maxRetriesPerRequest: 0 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/** One key for the whole stack unless set, drawn once and kept (0600): Redis and tokens outlive make down. */
function secret(env: Env, name: string, runDir: string): void {
  const file = join(runDir, name.toLowerCase().replaceAll('_', '-'));
  if (!env[name] && !env[`${name}_FILE`]) {
    if (!existsSync(file)) {
      writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
    }
    env[name] = readFileSync(file, 'utf8').trim();
  }
}

/** Polls `ready`; fails at once when an app PM2 started dies meanwhile, with the end of its log (it says why). */
async function waitFor(pm2: Pm2, runDir: string, what: string, ready: () => Promise<boolean>, ms = 60_000) {
  let dead: string | undefined;
  const died = async () => {
    dead = (await pm2.list()).find((app) => app.pm2_env?.restart_time || app.pm2_env?.status === 'errored')?.name;
    return dead !== undefined;
  };
  if (!(await pollUntil(async () => (await died()) || ready(), ms)) || dead) {
    const log = stack.logFile(runDir, dead ?? '');
    const end = dead && existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-15).join('\n') : '';
    throw new UsageError(dead ? `${dead} exited; the end of ${shown(log)}:\n${end}` : `${what} did not start in time`);
  }
}

/** The checks before anything starts: the instances' settings, Redis, PostgreSQL, Prometheus, the two movable ports. */
async function prepare(base: StackSettings) {
  const env = JSON.parse(JSON.stringify(process.env)) as Env;
  try {
    // As the instances will read them: at once, rather than after their first crash.
    loadConfig({ ...env, HOST: '127.0.0.1', PORT: '1', GROQ_BASE_URL: env.GROQ_BASE_URL || 'http://127.0.0.1' });
  } catch (error) {
    throw error instanceof ConfigError
      ? new UsageError(`Fix, then make up again:\n${error.problems.join('\n')}`)
      : error;
  }
  const file = env.REDIS_PASSWORD_FILE;
  const password = (env.REDIS_PASSWORD || (file ? readFileSync(file, 'utf8') : '')).trim();
  // With REDIS_SENTINELS the instances find the primary themselves.
  const ownRedis = !env.REDIS_SENTINELS && !(await redisAnswers(env.REDIS_URL || 'redis://127.0.0.1:6379', password));
  const database = await probePostgres(env.DATABASE_URL || DEFAULT_DATABASE_URL);
  if (database.state === 'refused' && env.DATABASE_URL) {
    throw new UsageError(`PostgreSQL at DATABASE_URL refuses the stack: ${database.reason}. Fix or unset it.`);
  }
  const config = join(base.PROMETHEUS_CONFIG_DIR, 'prometheus.local.yml');
  const installed = spawnSync('sh', ['-c', 'command -v prometheus']).status === 0;
  const prometheus = base.PROMETHEUS_ENABLED !== 'false' && installed && existsSync(config);
  if (!prometheus && base.PROMETHEUS_ENABLED === 'true') {
    throw new UsageError(`PROMETHEUS_ENABLED=true, but prometheus is not installed or ${config} does not exist`);
  }
  // A port the user left to its default moves to a free one; one they set must be free.
  for (const name of ['CADDY_ADMIN_PORT', 'PROMETHEUS_PORT'] as const) {
    const free = await isPortFree(base[name]);
    if (!free && base.fixed(name)) {
      throw new UsageError(`${name}=${base[name]} is in use; free it or choose another port`);
    }
    env[name] = String(free ? base[name] : await freePort());
  }
  return { env, password, ownRedis, ownPostgres: database.state !== 'ready', prometheus };
}

/** Instances 1…count, as make up's environment had them; the others removed, their held sockets let go first. */
async function setInstances(pm2: Pm2, settings: StackSettings, env: Env, running: number, count: number) {
  // Prometheus stops scraping the removed ones before they go.
  apps.writeTargets(settings, count);
  const removed = Array.from({ length: Math.max(0, running - count) }, (_, n) => count + n);
  if (removed.length > 0) {
    const ports = removed.map((slot) => String(stack.slotPort(settings, slot)));
    spawnSync('python3', [apps.SLOTS, 'release', apps.slotsSocket(settings.RUN_DIR), ...ports]);
  }
  // Each reports not-ready for SHUTDOWN_DRAIN_MS, finishes what it holds, exits.
  await Promise.all(removed.map((slot) => pm2.remove(stack.instanceId(slot))));
  for (let slot = running; slot < count; slot += 1) {
    await pm2.start(apps.instanceApp(settings, slot, env));
  }
}

const allReady = async (pm2: Pm2, runDir: string, count: number) => {
  const state = await stack.runState(pm2, runDir);
  return state?.instances.length === count && state.instances.every((instance) => instance.status === 'ready');
};

type Plan = Awaited<ReturnType<typeof prepare>>;

/** The services the stack brings (their URLs set in env), the slot holder, Caddy, Prometheus, the instances. */
async function startStack(pm2: Pm2, { env, password, ...plan }: Plan, count: number): Promise<void> {
  const settings = stack.loadStackSettings(env);
  const start = async (app: StartOptions, ready: () => Promise<boolean>) => {
    await pm2.start(app);
    await waitFor(pm2, settings.RUN_DIR, String(app.name), ready);
  };
  secret(env, 'LOG_CALLER_SALT', settings.RUN_DIR);
  secret(env, 'AUTH_JWT_SECRET', settings.RUN_DIR);
  // More than one Caddy health interval (1 s): Caddy sees an instance not ready before it stops listening.
  env.SHUTDOWN_DRAIN_MS ||= '3000';
  if (plan.ownRedis) {
    write('Redis does not answer at REDIS_URL: the stack starts its own redis-server.');
    const port = await freePort();
    env.REDIS_URL = `redis://127.0.0.1:${port}`;
    const ready = () => redisAnswers(env.REDIS_URL as string, password);
    await start(apps.redisApp(settings, port, password, env.REDIS_MAXMEMORY), ready);
  }
  if (plan.ownPostgres) {
    write(`PostgreSQL does not let the stack in: it runs its own, data in ${shown(settings.RUN_DIR)}/postgres.`);
    const port = await freePort();
    const database = new URL(env.DATABASE_URL || DEFAULT_DATABASE_URL).pathname.slice(1) || 'focus';
    env.DATABASE_URL = `postgres://postgres@127.0.0.1:${port}/${database}`;
    const ready = async () => (await probePostgres(env.DATABASE_URL as string)).state === 'ready';
    await start(apps.postgresApp(settings, ownCluster(settings.RUN_DIR, port)), ready);
  }
  env.REDIS_URL ||= 'redis://127.0.0.1:6379';
  env.DATABASE_URL ||= DEFAULT_DATABASE_URL;
  if (!env.GROQ_API_KEY && !env.GROQ_API_KEY_FILE && !env.GROQ_BASE_URL) {
    write('GROQ_API_KEY is not set: the instances answer from the bundled Groq simulator.');
    const port = await freePort();
    env.GROQ_BASE_URL = `http://127.0.0.1:${port}`;
    await start(apps.simulatorApp(settings, port, env), () => httpOk(`${env.GROQ_BASE_URL}/healthz`));
  }
  stack.writeStack(settings.RUN_DIR, env);
  // A socket file left by the last run would pass for the new holder's.
  rmSync(apps.slotsSocket(settings.RUN_DIR), { force: true });
  await start(apps.slotsApp(settings), async () => existsSync(apps.slotsSocket(settings.RUN_DIR)));
  await start(apps.caddyApp(settings, env), () => httpOk(`http://127.0.0.1:${settings.CADDY_ADMIN_PORT}/config/`));
  if (plan.prometheus) {
    const ready = () => httpOk(`http://127.0.0.1:${settings.PROMETHEUS_PORT}/-/ready`);
    await start(apps.prometheusApp(settings, count), ready);
  }
  await setInstances(pm2, settings, env, 0, count);
}

function formatStatus(state: RunState): string {
  const { RUN_DIR } = state.settings;
  const ready = state.instances.filter((instance) => instance.status === 'ready').length;
  const pid = (value: number | null) => String(value ?? '-');
  const row = (...cells: (string | number)[]) =>
    `  ${cells.map((cell, n) => String(cell).padEnd([11, 6, 8, 11][n] ?? 0)).join(' ')}`;
  const service = (name: 'caddy' | 'redis' | 'postgres' | 'simulator' | 'prometheus', found = state[name]) =>
    `  ${name.padEnd(11)} ${found?.url ?? '-'}${found?.managed ? `   pid ${pid(found.pid)} (started by make up)` : ''}`;
  return [
    `Stack running: ${ready}/${plural(state.instances.length)} ready behind Caddy at ${state.publicUrl}\n`,
    row('id', 'port', 'pid', 'status', 'restarts'),
    ...state.instances.map((i) => row(i.id, i.port, pid(i.pid), i.status, i.restarts)),
    '',
    ...(['caddy', 'redis', 'postgres', 'simulator', 'prometheus'] as const).map((name) => service(name)),
    `  logs        ${shown(join(RUN_DIR, 'logs'))}/ (make logs)`,
    `  pm2         daemon pid ${state.daemonPid}: PM2_HOME=${shown(stack.pm2Home(RUN_DIR))} npx pm2 monit`,
  ].join('\n');
}

/** PM2 and the stack's state (undefined when it does not run). */
async function withPm2<T>(runDir: string, use: (pm2: Pm2, state?: RunState) => Promise<T>): Promise<T> {
  const pm2 = await stack.connectPm2(runDir);
  return stack
    .runState(pm2, runDir)
    .then((state) => use(pm2, state))
    .finally(() => pm2.disconnect());
}

/** The stack's state without starting a PM2 daemon when none runs. */
const current = async (runDir: string) => stack.daemonPid(runDir) && (await withPm2(runDir, async (_, state) => state));

async function up(base: StackSettings, rawCount: string | undefined): Promise<void> {
  const count = parseCount(rawCount, base, 3);
  const running = await current(base.RUN_DIR);
  if (running) {
    return write(
      `Already running in ${shown(base.RUN_DIR)} (${plural(running.instances.length)}): make scale or down.`,
    );
  }
  // What a daemon killed with -9 left behind, if anything.
  await stack.endProcesses(stack.orphans(base.RUN_DIR), 10_000);
  mkdirSync(base.RUN_DIR, { recursive: true });
  const plan = await prepare(base);
  const url = stack.publicUrl(base);
  write(`Starting ${plural(count)} behind Caddy (run directory ${shown(base.RUN_DIR)})…`);
  try {
    await withPm2(base.RUN_DIR, async (pm2) => {
      await startStack(pm2, plan, count);
      await waitFor(pm2, base.RUN_DIR, 'The instances', () => allReady(pm2, base.RUN_DIR, count), 180_000);
      const chat = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"message":"Up?"}' };
      await waitFor(pm2, base.RUN_DIR, 'Caddy', async () => (await fetch(`${url}/api/chat`, chat)).ok);
      write(formatStatus((await stack.runState(pm2, base.RUN_DIR)) as RunState));
    });
  } catch (error) {
    write(`The stack did not start: ${(error as Error).message}\nStopping what started…`);
    await down(base);
    throw new UsageError(`make up failed; the logs are in ${join(base.RUN_DIR, 'logs')}`);
  }
  write(`\nTry it:  curl -s ${url}/api/chat -H 'content-type: application/json' -d '{"message":"I cannot start"}'`);
  write('Then:    make status · make scale N=5 · make logs · make down');
}

async function scale(base: StackSettings, rawCount: string | undefined): Promise<void> {
  const count = parseCount(rawCount, base);
  await withPm2(base.RUN_DIR, async (pm2, before) => {
    if (!before) {
      throw new UsageError(`Nothing is running in ${base.RUN_DIR}; start it with make up`);
    }
    write(`Scaling from ${before.instances.length} to ${plural(count)}…`);
    const env = stack.readStack(base.RUN_DIR) as Env;
    await setInstances(pm2, before.settings, env, before.instances.length, count);
    if (!(await pollUntil(() => allReady(pm2, base.RUN_DIR, count), 180_000))) {
      throw new UsageError(`Scaling did not settle in time; see make status and ${join(base.RUN_DIR, 'logs')}`);
    }
    // New instances are in rotation once Caddy's next health check (every second) has seen them.
    await sleep(1500);
    write(formatStatus((await stack.runState(pm2, base.RUN_DIR)) as RunState));
  });
}

async function down({ RUN_DIR }: StackSettings): Promise<void> {
  const daemon = stack.daemonPid(RUN_DIR);
  if (!stack.readStack(RUN_DIR) && !daemon) {
    return write(`Nothing is running in ${RUN_DIR}.`);
  }
  if (daemon) {
    write('Stopping: the instances drain, then the rest stops…');
    await withPm2(RUN_DIR, async (pm2) => {
      const names = (await pm2.list()).map((entry) => entry.name ?? '');
      const last = ['simulator', 'redis', 'postgres'];
      await Promise.all(names.filter((name) => !last.includes(name)).map((name) => pm2.remove(name)));
      await Promise.all(names.filter((name) => last.includes(name)).map((name) => pm2.remove(name)));
      await pm2.kill().catch(() => undefined);
    });
    await pollUntil(async () => !stack.alive(daemon), 10_000, 100);
  }
  const left = stack.orphans(RUN_DIR);
  if (left.length > 0) {
    await stack.endProcesses(left, 10_000);
    write(`Ended ${left.length} process(es) the PM2 daemon left behind.`);
  }
  stack.removeStack(RUN_DIR);
  write('Stopped.');
}

async function status({ RUN_DIR }: StackSettings): Promise<void> {
  const state = await current(RUN_DIR);
  // A daemon killed with -9 leaves its processes serving: say so, or "not running" would be a lie.
  const left = stack.orphans(RUN_DIR).length;
  const gone = `Not running: the PM2 daemon is gone, but ${left} process(es) of the stack still run. make down ends them.`;
  write(state ? formatStatus(state) : left ? gone : `Not running (${RUN_DIR}); make up starts it.`);
}

const commands: Record<string, typeof up> = { up, scale, down, status };
try {
  const [command = '', argument] = process.argv.slice(2);
  const settings = stack.loadStackSettings();
  // Every process of the stack, the PM2 daemon too, carries the absolute run directory (orphans() in stack.ts).
  process.env.RUN_DIR = settings.RUN_DIR;
  if (!commands[command]) {
    throw new UsageError('usage: cli.ts up [N] | scale N | down | status');
  }
  await commands[command](settings, argument);
} catch (error) {
  const mistake = error instanceof UsageError || error instanceof stack.SettingsError;
  process.stderr.write(`${mistake ? error.message : (error as Error).stack}\n`);
  process.exitCode = 1;
}
// PM2's client keeps sockets open after disconnect and killDaemon.
process.exit();
