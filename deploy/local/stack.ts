import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import type { StartOptions } from 'pm2';
import { z } from 'zod';
import { connectPm2, daemonPid, type Pm2 } from './pm2.js';
import { httpOk } from './ports.js';
import { durableRedisArgs } from './redis-flags.js';
import { loadStackSettings, type StackSettings, slotPort, upstreamList } from './settings.js';

/**
 * What PM2 runs for the stack, and what `make up` found or started around it.
 * $RUN_DIR/stack.json holds the latter (URLs, what was started); PM2 knows the
 * processes (pid, status, restarts), and an instance is ready when its
 * /readyz answers. $RUN_DIR/instance-env.json (0600) is the environment every
 * instance gets, so `make scale` starts new ones exactly like `make up` did.
 */

const stackSchema = z.object({
  publicUrl: z.string(),
  desiredInstances: z.number().int(),
  maxInstances: z.number().int(),
  redis: z.object({ url: z.string(), managed: z.boolean() }),
  /** managed: none (it already ran), system (Debian's cluster, started by make up), own ($RUN_DIR/postgres). */
  postgres: z.object({
    url: z.string(),
    managed: z.enum(['none', 'system', 'own']),
    cluster: z.object({ version: z.string(), name: z.string() }).nullable(),
  }),
  simulator: z.object({ url: z.string() }).nullable(),
  caddy: z.object({ adminUrl: z.string() }),
  prometheus: z.object({ url: z.string() }).nullable(),
});
export type StackInfo = z.infer<typeof stackSchema>;

export interface InstanceState {
  slot: number;
  id: string;
  port: number;
  pid: number | null;
  /** starting: running, /readyz not yet 200 · ready · restarting: died, PM2 restarts it after its backoff. */
  status: 'starting' | 'ready' | 'restarting';
  restarts: number;
}

type Pid = { pid: number | null };
export interface RunState extends Omit<StackInfo, 'redis' | 'postgres' | 'simulator' | 'caddy' | 'prometheus'> {
  daemonPid: number | null;
  redis: StackInfo['redis'] & Pid;
  postgres: StackInfo['postgres'] & Pid;
  simulator: (NonNullable<StackInfo['simulator']> & Pid) | null;
  caddy: StackInfo['caddy'] & Pid;
  prometheus: (NonNullable<StackInfo['prometheus']> & Pid) | null;
  instances: InstanceState[];
}

export const stackFile = (runDir: string) => join(runDir, 'stack.json');
export const envFile = (runDir: string) => join(runDir, 'instance-env.json');
export const logFile = (runDir: string, name: string) => join(runDir, 'logs', `${name}.log`);
export const instanceId = (slot: number) => `backend-${slot + 1}`;

export function readStack(runDir: string): StackInfo | undefined {
  try {
    return stackSchema.parse(JSON.parse(readFileSync(stackFile(runDir), 'utf8')));
  } catch {
    return undefined;
  }
}

export function writeStack(runDir: string, info: StackInfo): void {
  writeFileSync(stackFile(runDir), `${JSON.stringify(info, null, 2)}\n`);
}

export function removeStack(runDir: string): void {
  for (const file of [stackFile(runDir), envFile(runDir)]) {
    rmSync(file, { force: true });
  }
}

/** One PM2 app: restarted with exponential backoff (100 ms, ×1.5 up to 15 s, reset after 30 s up). */
export function app(runDir: string, name: string, script: string, args: string[], options: StartOptions): StartOptions {
  const log = logFile(runDir, name);
  mkdirSync(join(runDir, 'logs'), { recursive: true });
  return {
    name,
    script,
    args,
    // Run the command itself, not under PM2's Node wrapper: the pid PM2 shows is the process.
    interpreter: 'none',
    autorestart: true,
    exp_backoff_restart_delay: 100,
    output: log,
    error: log,
    merge_logs: true,
    kill_timeout: 10_000,
    ...options,
    // RUN_DIR marks every process of the stack (see orphans() in pm2.ts).
    env: { ...options.env, RUN_DIR: runDir },
  };
}

const SLOTS = join(import.meta.dirname, 'slots.py');
export const slotsSocket = (runDir: string) => join(runDir, 'slots.sock');

/** The holder of the slots' listening sockets (slots.py: why, and how). */
export function slotsApp(runDir: string): StartOptions {
  return app(runDir, 'slots', 'python3', [SLOTS, 'hold', slotsSocket(runDir)], {
    env: { PATH: process.env.PATH ?? '' },
  });
}

/** Scale-in: the holder lets go of the slot's socket, so it closes with the instance. */
export function releaseSlot(runDir: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = createConnection(slotsSocket(runDir), () => client.end(`release ${port}`));
    client
      .on('data', () => client.destroy())
      .on('close', () => resolve())
      .on('error', reject);
  });
}

export function instanceApp(settings: StackSettings, slot: number, env: Record<string, string>): StartOptions {
  const id = instanceId(slot);
  const port = String(slotPort(settings, slot));
  const command = [process.execPath, 'dist/src/main.js'];
  return app(settings.runDir, id, 'python3', [SLOTS, 'exec', slotsSocket(settings.runDir), port, ...command], {
    cwd: settings.repoRoot,
    env: { ...env, HOST: '127.0.0.1', PORT: port, INSTANCE_ID: id },
    // The instance bounds its own graceful shutdown (SIGTERM: drain, finish, exit); this only catches a hung one.
    kill_timeout: Number(env.SHUTDOWN_TIMEOUT_MS || 15_000) + 5000,
  });
}

export function redisApp(runDir: string, port: number, config: string[], maxmemory?: string): StartOptions {
  const dir = join(runDir, 'redis');
  mkdirSync(dir, { recursive: true });
  // The queue's jobs must survive a restart of redis-server (by PM2, or after make down).
  return app(runDir, 'redis', 'redis-server', [...config, ...durableRedisArgs({ port, dir, maxmemory })], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '' },
  });
}

export function simulatorApp(settings: StackSettings, port: number, env: Record<string, string>): StartOptions {
  return app(settings.runDir, 'simulator', process.execPath, ['--import', 'tsx', 'backend/sim/main.ts'], {
    cwd: settings.repoRoot,
    env: { ...env, SIM_PORT: String(port), SIM_HOST: '127.0.0.1' },
  });
}

/** Caddy on deploy/caddy/Caddyfile, its {$VARS} from the stack settings; every slot is an upstream. */
export function caddyApp(settings: StackSettings, env: Record<string, string>): StartOptions {
  const home = join(settings.runDir, 'caddy');
  const config = join(settings.repoRoot, 'deploy/caddy/Caddyfile');
  return app(settings.runDir, 'caddy', 'caddy', ['run', '--config', config, '--adapter', 'caddyfile'], {
    cwd: settings.repoRoot,
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
  });
}

/** Our own cluster's postmaster (its first line of postmaster.pid). */
function postmasterPid(runDir: string): number | null {
  try {
    return Number(readFileSync(join(runDir, 'postgres/data/postmaster.pid'), 'utf8').split('\n')[0]) || null;
  } catch {
    return null;
  }
}

const readyz = (port: number) => httpOk(`http://127.0.0.1:${port}/readyz`, 1000).catch(() => false);

/** stack.json joined with what PM2 says of every process, and each instance's /readyz. */
export async function runState(pm2: Pm2, settings: StackSettings, daemonPid: number): Promise<RunState | undefined> {
  const info = readStack(settings.runDir);
  if (!info) {
    return undefined;
  }
  const processes = await pm2.list();
  const pidOf = (name: string) => {
    const found = processes.find((entry) => entry.name === name);
    return found?.pm2_env?.status === 'online' && found.pid ? found.pid : null;
  };
  const instances = await Promise.all(
    processes
      .filter((entry) => entry.name?.startsWith('backend-'))
      .map(async (entry): Promise<InstanceState> => {
        const slot = Number(entry.name?.slice('backend-'.length)) - 1;
        const port = slotPort(settings, slot);
        const pid = pidOf(entry.name as string);
        return {
          slot: slot + 1,
          id: instanceId(slot),
          port,
          pid,
          status: pid === null ? 'restarting' : (await readyz(port)) ? 'ready' : 'starting',
          restarts: entry.pm2_env?.restart_time ?? 0,
        };
      }),
  );
  const withPid = <T extends object>(service: T | null, name: string) =>
    service ? { ...service, pid: pidOf(name) } : null;
  return {
    ...info,
    daemonPid,
    redis: { ...info.redis, pid: pidOf('redis') },
    postgres: { ...info.postgres, pid: info.postgres.managed === 'own' ? postmasterPid(settings.runDir) : null },
    simulator: withPid(info.simulator, 'simulator'),
    caddy: { ...info.caddy, pid: pidOf('caddy') },
    prometheus: withPid(info.prometheus, 'prometheus'),
    instances: instances.sort((a, b) => a.slot - b.slot),
  };
}

/** The state of the stack in runDir, for tests and bench scenarios (undefined when nothing runs). */
export async function readRunState(env: Record<string, string | undefined>): Promise<RunState | undefined> {
  const settings = loadStackSettings({ ...process.env, ...env });
  const daemon = daemonPid(settings.runDir);
  if (!daemon || !readStack(settings.runDir)) {
    return undefined;
  }
  const pm2 = await connectPm2(settings.runDir);
  try {
    return await runState(pm2, settings, daemon);
  } finally {
    pm2.disconnect();
  }
}
