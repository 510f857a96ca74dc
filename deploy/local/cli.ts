import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join, relative } from 'node:path';
import { Redis } from 'ioredis';
import type { StartOptions } from 'pm2';
import { ConfigError, loadConfig } from '../../backend/src/config.js';
import * as apps from './apps.js';
import { alive, connectPm2, daemonPid, endProcesses, orphans, type Pm2, pm2Home } from './pm2.js';
import { freePort, httpOk, isPortFree, pollUntil, sleep } from './ports.js';
import { DEFAULT_DATABASE_URL, ownCluster, probePostgres } from './postgres.js';
import { loadStackSettings, type StackSettings } from './settings.js';
import { type RunState, readStack, removeStack, runState, writeStack } from './stack.js';

/** make up [N] | scale N | down | status: `node --import tsx deploy/local/cli.ts <command>` (see README.md). */

class UsageError extends Error {}
const write = (line = ''): void => void process.stdout.write(`${line}\n`);
const shown = (path: string) => (relative('', path).startsWith('..') ? path : relative('', path) || '.');
const plural = (count: number) => `${count} instance${count === 1 ? '' : 's'}`;
const has = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;

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
  const pong = await redis
    .connect()
    .then(() => redis.ping())
    .catch(() => '');
  redis.disconnect();
  return pong === 'PONG';
}

/** One key for the whole stack unless set, drawn once and kept (0600): Redis and tokens outlive make down. */
function secret(env: Record<string, string>, name: string, runDir: string): void {
  const file = join(runDir, name.toLowerCase().replaceAll('_', '-'));
  if (!env[name] && !env[`${name}_FILE`]) {
    if (!existsSync(file)) {
      writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
    }
    env[name] = readFileSync(file, 'utf8').trim();
  }
}

/**
 * Polls `ready`; fails at once, with the end of its log, when an app PM2 started dies meanwhile
 * (a bad setting, a port in use: the process itself says what), else after `ms`.
 */
async function waitFor(pm2: Pm2, settings: StackSettings, what: string, ready: () => Promise<boolean>, ms = 60_000) {
  let dead: string | undefined;
  const died = async () => {
    const list = await pm2.list();
    dead = list.find((app) => app.pm2_env?.restart_time || app.pm2_env?.status === 'errored')?.name;
    return dead !== undefined;
  };
  if (!(await pollUntil(async () => (await died()) || ready(), ms)) || dead) {
    const log = apps.logFile(settings.RUN_DIR, dead ?? '');
    const end =
      dead && existsSync(log) ? `:\n${readFileSync(log, 'utf8').trim().split('\n').slice(-15).join('\n')}` : '';
    throw new UsageError(dead ? `${dead} exited; the end of ${shown(log)}${end}` : `${what} did not start in time`);
  }
}

/** What to start: a Redis and a PostgreSQL unless one answers, the simulator without a Groq key, Prometheus. */
async function prepare(base: StackSettings) {
  const env = JSON.parse(JSON.stringify(process.env)) as Record<string, string>;
  try {
    // As the instances will read them (at once: their crash loop would take a while to show).
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
  const ownPostgres = database.state !== 'ready';
  const config = join(base.PROMETHEUS_CONFIG_DIR, 'prometheus.local.yml');
  const prometheus = base.PROMETHEUS_ENABLED !== 'false' && has('prometheus') && existsSync(config);
  if (!prometheus && base.PROMETHEUS_ENABLED === 'true') {
    throw new UsageError(`PROMETHEUS_ENABLED=true, but prometheus is not installed or ${config} does not exist`);
  }
  // A port the user left to its default moves to a free one; one they set must be free.
  const movable = async (name: 'CADDY_ADMIN_PORT' | 'PROMETHEUS_PORT') => {
    if (!(await isPortFree(base[name])) && base.fixed(name)) {
      throw new UsageError(`${name}=${base[name]} is in use; free it or choose another port`);
    }
    return (await isPortFree(base[name])) ? base[name] : freePort();
  };
  const ports = {
    CADDY_ADMIN_PORT: await movable('CADDY_ADMIN_PORT'),
    PROMETHEUS_PORT: await movable('PROMETHEUS_PORT'),
  };
  return { settings: { ...base, ...ports }, env, password, ownRedis, ownPostgres, prometheus };
}

const allReady = (state: RunState | undefined, count: number) =>
  state?.instances.length === count && state.instances.every((instance) => instance.status === 'ready');

type Plan = Awaited<ReturnType<typeof prepare>>;

async function startApp(pm2: Pm2, settings: StackSettings, app: StartOptions, ready: () => Promise<boolean>) {
  await pm2.start(app);
  await waitFor(pm2, settings, app.name as string, ready);
}

/** Redis, PostgreSQL and the simulator when the stack brings its own: their URLs, set in env for the instances. */
async function startServices(pm2: Pm2, { settings, env, ...plan }: Plan): Promise<Record<string, string>> {
  if (plan.ownRedis) {
    write('Redis does not answer at REDIS_URL: the stack starts its own redis-server.');
    const port = await freePort();
    env.REDIS_URL = `redis://127.0.0.1:${port}`;
    const app = apps.redisApp(settings, port, plan.password, env.REDIS_MAXMEMORY);
    await startApp(pm2, settings, app, () => redisAnswers(env.REDIS_URL as string, plan.password));
  }
  if (plan.ownPostgres) {
    write(`PostgreSQL does not let the stack in: it runs its own, data in ${shown(settings.RUN_DIR)}/postgres.`);
    const port = await freePort();
    const database = new URL(env.DATABASE_URL || DEFAULT_DATABASE_URL).pathname.slice(1) || 'focus';
    env.DATABASE_URL = `postgres://postgres@127.0.0.1:${port}/${database}`;
    const ready = async () => (await probePostgres(env.DATABASE_URL as string)).state === 'ready';
    await startApp(pm2, settings, apps.postgresApp(settings, ownCluster(settings.RUN_DIR, port)), ready);
  }
  env.REDIS_URL ||= 'redis://127.0.0.1:6379';
  env.DATABASE_URL ||= DEFAULT_DATABASE_URL;
  const services: Record<string, string> = { redis: env.REDIS_URL, postgres: env.DATABASE_URL };
  if (!env.GROQ_API_KEY && !env.GROQ_API_KEY_FILE && !env.GROQ_BASE_URL) {
    write('GROQ_API_KEY is not set: the instances answer from the bundled Groq simulator.');
    const port = await freePort();
    services.simulator = env.GROQ_BASE_URL = `http://127.0.0.1:${port}`;
    const app = apps.simulatorApp(settings, port, env);
    await startApp(pm2, settings, app, () => httpOk(`${services.simulator}/healthz`));
  }
  return services;
}

/** The services, the slot holder, the instances, Caddy and Prometheus; returns once a chat answers through Caddy. */
async function startStack(pm2: Pm2, plan: Plan, count: number): Promise<void> {
  const { settings, env } = plan;
  secret(env, 'LOG_CALLER_SALT', settings.RUN_DIR);
  secret(env, 'AUTH_JWT_SECRET', settings.RUN_DIR);
  // More than one Caddy health interval (1 s): Caddy sees an instance not ready before it stops listening.
  env.SHUTDOWN_DRAIN_MS ||= '3000';
  const services = await startServices(pm2, plan);
  services.caddy = `http://127.0.0.1:${settings.CADDY_ADMIN_PORT}`;
  if (plan.prometheus) {
    services.prometheus = `http://127.0.0.1:${settings.PROMETHEUS_PORT}`;
  }
  const host = settings.PUBLIC_BIND === '0.0.0.0' ? '127.0.0.1' : settings.PUBLIC_BIND;
  const publicUrl = `http://${host}:${settings.PUBLIC_PORT}`;
  const basePort = settings.BACKEND_BASE_PORT;
  writeStack(settings.RUN_DIR, { publicUrl, desiredInstances: count, basePort, services, env });
  // A socket file left by the last run would pass for the new holder's.
  rmSync(apps.slotsSocket(settings.RUN_DIR), { force: true });
  await startApp(pm2, settings, apps.slotsApp(settings), async () => existsSync(apps.slotsSocket(settings.RUN_DIR)));
  for (let slot = 0; slot < count; slot += 1) {
    await pm2.start(apps.instanceApp(settings, slot, env));
  }
  await startApp(pm2, settings, apps.caddyApp(settings, env), () => httpOk(`${services.caddy}/config/`));
  if (plan.prometheus) {
    const ready = () => httpOk(`${services.prometheus}/-/ready`);
    await startApp(pm2, settings, apps.prometheusApp(settings, count), ready);
  }
  await waitFor(pm2, settings, 'The instances', async () => allReady(await runState(pm2, settings), count), 180_000);
  const chat = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"message":"Up?"}' };
  await waitFor(pm2, settings, 'Caddy', async () => (await fetch(`${publicUrl}/api/chat`, chat)).ok);
}

function formatStatus(state: RunState, runDir: string): string {
  const ready = state.instances.filter((instance) => instance.status === 'ready').length;
  const pid = (value: number | null) => String(value ?? '-');
  const service = (name: 'caddy' | 'redis' | 'postgres' | 'simulator' | 'prometheus', found = state[name]) =>
    `  ${name.padEnd(11)} ${found?.url ?? '-'}${found?.managed ? `   pid ${pid(found.pid)} (started by make up)` : ''}`;
  const row = (...cells: (string | number)[]) =>
    `  ${cells.map((cell, n) => String(cell).padEnd([11, 6, 8, 11][n] ?? 0)).join(' ')}`;
  return [
    `Stack running: ${ready}/${state.desiredInstances} instances ready behind Caddy at ${state.publicUrl}\n`,
    row('id', 'port', 'pid', 'status', 'restarts'),
    ...state.instances.map((i) => row(i.id, i.port, pid(i.pid), i.status, i.restarts)),
    '',
    ...(['caddy', 'redis', 'postgres', 'simulator', 'prometheus'] as const).map((name) => service(name)),
    `  logs        ${shown(join(runDir, 'logs'))}/ (make logs)`,
    `  pm2         daemon pid ${state.daemonPid}: PM2_HOME=${shown(pm2Home(runDir))} npx pm2 monit`,
  ].join('\n');
}

async function withPm2<T>(settings: StackSettings, use: (pm2: Pm2, state?: RunState) => Promise<T>): Promise<T> {
  const pm2 = await connectPm2(settings.RUN_DIR);
  return runState(pm2, settings)
    .then((state) => use(pm2, state))
    .finally(() => pm2.disconnect());
}

async function up(base: StackSettings, rawCount: string | undefined): Promise<void> {
  const count = parseCount(rawCount, base, 3);
  const running = daemonPid(base.RUN_DIR) && (await withPm2(base, async (_, state) => state));
  if (running) {
    return write(
      `Already running in ${shown(base.RUN_DIR)} (${plural(running.instances.length)}): make scale or down.`,
    );
  }
  // What a daemon killed with -9 left behind, if anything.
  await endProcesses(orphans(base.RUN_DIR), 10_000);
  mkdirSync(base.RUN_DIR, { recursive: true });
  const plan = await prepare(base);
  write(`Starting ${plural(count)} behind Caddy (run directory ${shown(base.RUN_DIR)})…`);
  try {
    await withPm2(plan.settings, async (pm2) => {
      await startStack(pm2, plan, count);
      write(formatStatus((await runState(pm2, plan.settings)) as RunState, base.RUN_DIR));
    });
  } catch (error) {
    write(`The stack did not start: ${(error as Error).message}\nStopping what started…`);
    await down(base);
    throw new UsageError(`make up failed; the logs are in ${join(base.RUN_DIR, 'logs')}`);
  }
  const url = readStack(base.RUN_DIR)?.publicUrl;
  write(`\nTry it:  curl -s ${url}/api/chat -H 'content-type: application/json' -d '{"message":"I cannot start"}'`);
  write('Then:    make status · make scale N=5 · make logs · make down');
}

/** Scale-in: the holder lets go of the slot's socket first, so the port closes with the instance. */
const releaseSlot = (runDir: string, port: number) =>
  new Promise((resolve, reject) => {
    const client = createConnection(apps.slotsSocket(runDir), () => client.end(`release ${port}`));
    client
      .on('data', () => client.destroy())
      .on('close', resolve)
      .on('error', reject);
  });

async function scale(base: StackSettings, rawCount: string | undefined): Promise<void> {
  const count = parseCount(rawCount, base);
  const info = readStack(base.RUN_DIR);
  const settings = { ...base, BACKEND_BASE_PORT: info?.basePort ?? base.BACKEND_BASE_PORT };
  await withPm2(settings, async (pm2, before) => {
    if (!before || !info) {
      throw new UsageError(`Nothing is running in ${settings.RUN_DIR}; start it with make up`);
    }
    write(`Scaling from ${before.instances.length} to ${plural(count)}…`);
    // Prometheus stops scraping the removed ones before they go.
    apps.writeTargets(settings, count);
    const removed = before.instances.filter((instance) => instance.slot > count);
    await Promise.all(removed.map((instance) => releaseSlot(settings.RUN_DIR, instance.port)));
    // Each reports not-ready for SHUTDOWN_DRAIN_MS, finishes what it holds, exits.
    await Promise.all(removed.map((instance) => pm2.remove(instance.id)));
    for (let slot = before.instances.length; slot < count; slot += 1) {
      await pm2.start(apps.instanceApp(settings, slot, info.env));
    }
    writeStack(settings.RUN_DIR, { ...info, desiredInstances: count });
    if (!(await pollUntil(async () => allReady(await runState(pm2, settings), count), 180_000))) {
      throw new UsageError(`Scaling did not settle in time; see make status and ${join(settings.RUN_DIR, 'logs')}`);
    }
    // New instances are in rotation once Caddy's next health check (every second) has seen them.
    await sleep(1500);
    write(formatStatus((await runState(pm2, settings)) as RunState, settings.RUN_DIR));
  });
}

async function down(settings: StackSettings): Promise<void> {
  const daemon = daemonPid(settings.RUN_DIR);
  if (!readStack(settings.RUN_DIR) && !daemon) {
    return write(`Nothing is running in ${settings.RUN_DIR}.`);
  }
  if (daemon) {
    write('Stopping: the instances drain, then the rest stops…');
    await withPm2(settings, async (pm2) => {
      const names = (await pm2.list()).map((entry) => entry.name ?? '');
      const last = ['simulator', 'redis', 'postgres'];
      await Promise.all(names.filter((name) => !last.includes(name)).map((name) => pm2.remove(name)));
      await Promise.all(names.filter((name) => last.includes(name)).map((name) => pm2.remove(name)));
      await pm2.kill().catch(() => undefined);
    });
    await pollUntil(async () => !alive(daemon), 10_000, 100);
  }
  const left = orphans(settings.RUN_DIR);
  if (left.length > 0) {
    await endProcesses(left, 10_000);
    write(`Ended ${left.length} process(es) the PM2 daemon left behind.`);
  }
  removeStack(settings.RUN_DIR);
  write('Stopped.');
}

async function status(settings: StackSettings): Promise<void> {
  const state = daemonPid(settings.RUN_DIR) && (await withPm2(settings, async (_, found) => found));
  // A daemon killed with -9 leaves its processes serving: say so, or "not running" would be a lie.
  const left = orphans(settings.RUN_DIR).length;
  const gone = `Not running: the PM2 daemon is gone, but ${left} process(es) of the stack still run. make down ends them.`;
  write(
    state
      ? formatStatus(state, settings.RUN_DIR)
      : left
        ? gone
        : `Not running (${settings.RUN_DIR}); make up starts it.`,
  );
}

const commands: Record<string, typeof up> = { up, scale, down, status };
try {
  const [command = '', argument] = process.argv.slice(2);
  const settings = loadStackSettings();
  // Every process of the stack, the PM2 daemon too, carries the absolute run directory: see orphans().
  process.env.RUN_DIR = settings.RUN_DIR;
  if (!commands[command]) {
    throw new UsageError('usage: cli.ts up [N] | scale N | down | status');
  }
  await commands[command](settings, argument);
} catch (error) {
  process.stderr.write(`${error instanceof UsageError ? error.message : (error as Error).stack}\n`);
  process.exitCode = 1;
}
// PM2's client keeps sockets open after disconnect and killDaemon.
process.exit();
