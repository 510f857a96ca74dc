import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { freePort, httpOk, pollUntil } from './ports.js';
import { durableRedisArgs } from './redis-flags.js';
import type { RunPaths } from './run-state.js';
import { type StackSettings, upstreamList } from './settings.js';
import { type SupervisedProcess, superviseProcess } from './supervised-process.js';

/** The singletons around the instances: Redis, the Groq simulator, Caddy. */
export interface ServiceContext {
  settings: StackSettings;
  paths: RunPaths;
  logger: Logger;
  onChange: () => void;
}

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const START_TIMEOUT_MS = 30_000;

export async function redisReachable(url: string, timeoutMs = 1500, password?: string): Promise<boolean> {
  const client = new Redis(url, {
    password,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
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

/** Hides a password in a Redis URL before it is shown or written down. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) {
      parsed.password = '***';
    }
    return parsed.toString();
  } catch {
    return '<unparsable url>';
  }
}

export interface RedisService {
  url: string;
  /** Present when the stack started its own redis-server. */
  process: SupervisedProcess | undefined;
}

/** REDIS_PASSWORD, or the file REDIS_PASSWORD_FILE names (the backend's config check read it first). */
function redisPassword(env: NodeJS.ProcessEnv): string | undefined {
  if (env.REDIS_PASSWORD) {
    return env.REDIS_PASSWORD;
  }
  return env.REDIS_PASSWORD_FILE ? readFileSync(env.REDIS_PASSWORD_FILE, 'utf8').trim() : undefined;
}

/**
 * REDIS_URL (or the default local Redis) when it answers; else a redis-server of our own on a free port.
 * With REDIS_SENTINELS the instances find the primary themselves: nothing to start.
 */
export async function provideRedis(context: ServiceContext, env: NodeJS.ProcessEnv): Promise<RedisService> {
  const wanted = env.REDIS_URL || DEFAULT_REDIS_URL;
  if (env.REDIS_SENTINELS) {
    context.logger.info({ sentinels: env.REDIS_SENTINELS }, 'REDIS_SENTINELS set: the instances ask the sentinels');
    return { url: wanted, process: undefined };
  }
  const password = redisPassword(env);
  if (await redisReachable(wanted, 1500, password)) {
    context.logger.info({ redis: redactUrl(wanted) }, 'using the running Redis');
    return { url: wanted, process: undefined };
  }
  const port = await freePort();
  const dir = join(context.paths.dir, 'redis');
  mkdirSync(dir, { recursive: true });
  context.logger.warn({ wanted: redactUrl(wanted), port }, 'Redis not reachable; starting redis-server');
  const child = superviseProcess({
    name: 'redis',
    command: 'redis-server',
    // The queue's jobs must survive a restart of redis-server (by the supervisor, or after `make down`).
    args: [...ownRedisConfig(dir, password), ...durableRedisArgs({ port, dir, maxmemory: env.REDIS_MAXMEMORY })],
    // RUN_DIR marks it as a process of this stack (see process-group.ts).
    env: { PATH: env.PATH, RUN_DIR: context.paths.dir },
    cwd: dir,
    logFile: context.paths.log('redis'),
    logger: context.logger,
    restart: true,
    stopTimeoutMs: 5000,
    onChange: context.onChange,
  });
  const url = `redis://127.0.0.1:${port}`;
  if (!(await pollUntil(() => redisReachable(url, 500, password), START_TIMEOUT_MS))) {
    throw new Error(`redis-server did not answer on port ${port}; see ${context.paths.log('redis')}`);
  }
  return { url, process: child };
}

/** The instances send REDIS_PASSWORD: our redis-server asks for it too, from a file (not argv, which ps shows). */
function ownRedisConfig(dir: string, password: string | undefined): string[] {
  if (password === undefined) {
    return [];
  }
  const file = join(dir, 'redis.conf');
  writeFileSync(file, `requirepass "${password.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"\n`, { mode: 0o600 });
  return [file];
}

/** With no key and no base URL of their own, the instances share one simulator (one cache, one quota). */
export function needsSimulator(env: NodeJS.ProcessEnv): boolean {
  return !env.GROQ_API_KEY && !env.GROQ_API_KEY_FILE && !env.GROQ_BASE_URL;
}

export interface UrlService {
  url: string;
  process: SupervisedProcess;
}

export async function startSimulator(context: ServiceContext, env: NodeJS.ProcessEnv): Promise<UrlService> {
  const port = await freePort();
  const child = superviseProcess({
    name: 'simulator',
    command: process.execPath,
    args: ['--import', 'tsx', 'backend/sim/main.ts'],
    env: { ...env, SIM_PORT: String(port), SIM_HOST: '127.0.0.1' },
    cwd: context.settings.repoRoot,
    logFile: context.paths.log('simulator'),
    logger: context.logger,
    restart: true,
    stopTimeoutMs: 5000,
    onChange: context.onChange,
  });
  const url = `http://127.0.0.1:${port}`;
  if (!(await pollUntil(() => httpOk(`${url}/healthz`), START_TIMEOUT_MS))) {
    throw new Error(`the Groq simulator did not start; see ${context.paths.log('simulator')}`);
  }
  return { url, process: child };
}

/** Caddy on deploy/caddy/Caddyfile, its {$VARS} set from the stack settings. */
export async function startCaddy(context: ServiceContext, env: NodeJS.ProcessEnv): Promise<UrlService> {
  const { settings, paths } = context;
  const home = join(paths.dir, 'caddy');
  mkdirSync(home, { recursive: true });
  const child = superviseProcess({
    name: 'caddy',
    command: 'caddy',
    args: ['run', '--config', join(settings.repoRoot, 'deploy/caddy/Caddyfile'), '--adapter', 'caddyfile'],
    env: {
      ...env,
      PUBLIC_PORT: String(settings.publicPort),
      PUBLIC_BIND: settings.publicBind,
      PUBLIC_STATS: String(settings.publicStats),
      CADDY_ADMIN_PORT: String(settings.caddyAdminPort),
      BACKEND_UPSTREAMS: upstreamList(settings),
      // Caddy's autosave and storage stay in the run directory, not in the user's home.
      XDG_DATA_HOME: join(home, 'data'),
      XDG_CONFIG_HOME: join(home, 'config'),
    },
    cwd: settings.repoRoot,
    logFile: paths.log('caddy'),
    logger: context.logger,
    restart: true,
    stopTimeoutMs: 10_000,
    onChange: context.onChange,
  });
  const adminUrl = `http://127.0.0.1:${settings.caddyAdminPort}`;
  if (!(await pollUntil(() => httpOk(`${adminUrl}/config/`), START_TIMEOUT_MS))) {
    throw new Error(`Caddy did not start; see ${paths.log('caddy')}`);
  }
  return { url: adminUrl, process: child };
}
