import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { createInstancePool, type InstancePool } from './instance-pool.js';
import { sleep } from './ports.js';
import { type PostgresService, providePostgres, stopPostgres } from './postgres.js';
import { hasCommand } from './prerequisites.js';
import { type PrometheusTargets, prometheusSkipReason, prometheusTargets, startPrometheus } from './prometheus.js';
import { type RunState, readDesiredInstances, runPaths, writeRunState } from './run-state.js';
import {
  needsSimulator,
  provideRedis,
  type RedisService,
  redactUrl,
  type ServiceContext,
  startCaddy,
  startSimulator,
  type UrlService,
} from './services.js';
import { DEFAULT_INSTANCES, loadStackSettings } from './settings.js';

/**
 * The background process behind `make up`: starts Redis and PostgreSQL (unless
 * one answers; see postgres.ts), the Groq simulator (unless there is a key), N instances, Caddy and Prometheus
 * (when installed and configured); keeps them running, rescales on SIGHUP
 * (reading $RUN_DIR/desired-instances), stops everything on SIGTERM. The CLI
 * (cli.ts) spawns it detached and talks to it through $RUN_DIR.
 */

const settings = loadStackSettings();
const paths = runPaths(settings.runDir);
// The same line format as the instances' logs.
const logger = pino({
  base: { component: 'runner' },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
});
const env = { ...process.env };
// Longer than one Caddy health interval (1 s), so Caddy has seen an instance
// report not-ready before it stops listening.
env.SHUTDOWN_DRAIN_MS ||= '3000';
// One key for the whole stack, so one caller has the same tag in every instance's log.
env.LOG_CALLER_SALT ||= randomBytes(32).toString('hex');
// Every instance signs and checks device tokens with one key, kept in the run
// directory so tokens outlive a make down / make up.
if (!env.AUTH_JWT_SECRET && !env.AUTH_JWT_SECRET_FILE) {
  env.AUTH_JWT_SECRET = stackJwtSecret(join(paths.dir, 'auth-jwt-secret'));
}

function stackJwtSecret(file: string): string {
  if (!existsSync(file)) {
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  }
  chmodSync(file, 0o600);
  return readFileSync(file, 'utf8').trim();
}

let phase: RunState['phase'] = 'starting';
let failure: string | null = null;
let redis: RedisService | undefined;
let postgres: PostgresService | undefined;
let simulator: UrlService | undefined;
let caddy: UrlService | undefined;
let prometheus: UrlService | undefined;
let targets: PrometheusTargets | undefined;
let pool: InstancePool | undefined;
let desired = readDesiredInstances(paths) ?? DEFAULT_INSTANCES;

function publish() {
  const instances = pool?.snapshot() ?? [];
  targets?.update(instances);
  writeRunState(paths, {
    supervisorPid: process.pid,
    phase,
    error: failure,
    updatedAt: new Date().toISOString(),
    publicUrl: `http://${settings.publicBind === '0.0.0.0' ? '127.0.0.1' : settings.publicBind}:${settings.publicPort}`,
    desiredInstances: desired,
    maxInstances: settings.maxInstances,
    redis: {
      url: redis ? redactUrl(redis.url) : '',
      managed: redis?.process !== undefined,
      pid: redis?.process?.pid ?? null,
    },
    postgres: postgres
      ? {
          url: redactUrl(postgres.url),
          managed: postgres.managed,
          cluster: postgres.cluster,
          pid: postgres.process?.pid ?? null,
        }
      : null,
    simulator: simulator ? { url: simulator.url, pid: simulator.process.pid } : null,
    caddy: caddy ? { adminUrl: caddy.url, pid: caddy.process.pid } : null,
    prometheus: prometheus ? { url: prometheus.url, pid: prometheus.process.pid } : null,
    instances,
  });
}

const context: ServiceContext = { settings, paths, logger, onChange: publish };

async function start() {
  publish();
  redis = await provideRedis(context, env);
  env.REDIS_URL = redis.url;
  postgres = await providePostgres(context, env);
  env.DATABASE_URL = postgres.url;
  if (needsSimulator(env)) {
    simulator = await startSimulator(context, env);
    env.GROQ_BASE_URL = simulator.url;
    logger.warn({ simulator: simulator.url }, 'GROQ_API_KEY is not set: the instances answer from the Groq simulator');
  }
  pool = createInstancePool({ settings, env, paths, logger, onChange: publish });
  pool.scaleTo(desired);
  caddy = await startCaddy(context, env);
  const skip = prometheusSkipReason(context, hasCommand('prometheus'));
  if (skip === undefined) {
    targets = prometheusTargets(paths.prometheus, settings.caddyAdminPort);
    publish();
    prometheus = await startPrometheus(context);
  } else {
    logger.info({ reason: skip }, 'Prometheus not started');
  }
  const deadline = Date.now() + 120_000;
  while (!pool.settled()) {
    if (Date.now() > deadline) {
      throw new Error(`instances not ready after 120 s; see ${paths.logs}`);
    }
    await sleep(200);
  }
  phase = 'running';
  publish();
  logger.info({ instances: desired, url: `http://127.0.0.1:${settings.publicPort}` }, 'stack running');
}

let stopping: Promise<void> | undefined;
function stop(exitCode: number) {
  stopping ??= (async () => {
    if (phase !== 'failed') {
      phase = 'stopping';
    }
    publish();
    logger.info('stopping the stack');
    await Promise.all([caddy?.process.stop(), pool?.stop(), prometheus?.process.stop()]);
    await Promise.all([simulator?.process.stop(), redis?.process?.stop(), stopPostgres(postgres)]);
    if (phase !== 'failed') {
      phase = 'stopped';
    }
    publish();
    logger.info('stack stopped');
    process.exit(exitCode);
  })();
  return stopping;
}

process.on('SIGHUP', () => {
  const wanted = readDesiredInstances(paths);
  if (wanted === undefined || stopping) {
    return;
  }
  logger.info({ from: desired, to: wanted }, 'scaling');
  desired = wanted;
  pool?.scaleTo(desired);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => void stop(0));
}

try {
  await start();
} catch (error) {
  failure = (error as Error).message;
  phase = 'failed';
  logger.error({ error: failure }, 'the stack could not start');
  await stop(1);
}
