import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { ProcessDescription, StartOptions } from 'pm2';
import { z } from 'zod';
import { httpOk, pollUntil } from './ports.js';

/**
 * The stack of one run directory: the runner's own settings (named as their variables; the rest of the
 * environment goes to every instance), its PM2 (daemon in $RUN_DIR/pm2, never ~/.pm2), and what make up
 * found or started ($RUN_DIR/stack.json) joined with what PM2 and each instance's /readyz say now.
 */

const port = (fallback: number) => z.coerce.number().int().min(1).max(65_535).default(fallback);
const schema = z
  .object({
    RUN_DIR: z.string().default('.run'),
    PUBLIC_PORT: port(8080),
    PUBLIC_BIND: z.string().default('127.0.0.1'),
    PUBLIC_STATS: z.enum(['true', 'false']).default('false'),
    BACKEND_BASE_PORT: port(3001),
    MAX_INSTANCES: z.coerce.number().int().min(1).max(64).default(16),
    CADDY_ADMIN_PORT: port(2019),
    PROMETHEUS_PORT: port(9090),
    PROMETHEUS_ENABLED: z.enum(['auto', 'true', 'false']).default('auto'),
    PROMETHEUS_CONFIG_DIR: z.string().default('prometheus'),
  })
  .refine((s) => s.BACKEND_BASE_PORT + s.MAX_INSTANCES - 1 <= 65_535, {
    path: ['BACKEND_BASE_PORT'],
    message: 'the slot range BACKEND_BASE_PORT + MAX_INSTANCES - 1 must stay below 65536',
  });

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export type StackSettings = ReturnType<typeof loadStackSettings>;

/** A setting of the runner's own that it refuses: make says which, no stack trace. */
export class SettingsError extends Error {}

export function loadStackSettings(env: NodeJS.ProcessEnv = process.env) {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    throw new SettingsError(
      parsed.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`).join('\n'),
    );
  }
  return Object.freeze({
    ...parsed.data,
    RUN_DIR: resolve(parsed.data.RUN_DIR),
    PROMETHEUS_CONFIG_DIR: resolve(REPO_ROOT, parsed.data.PROMETHEUS_CONFIG_DIR),
    /** A port the user set stays; one left to its default may move to a free one. */
    fixed: (name: 'CADDY_ADMIN_PORT' | 'PROMETHEUS_PORT') => name in present,
  });
}

/** Instance n (backend-n) always lives in slot n-1, on this loopback port. */
export const slotPort = (settings: StackSettings, slot: number) => settings.BACKEND_BASE_PORT + slot;
export const instanceId = (slot: number) => `backend-${slot + 1}`;
export const logFile = (runDir: string, name: string) => join(runDir, 'logs', `${name}.log`);
export const pm2Home = (runDir: string) => join(runDir, 'pm2');

export type Pm2 = Awaited<ReturnType<typeof connectPm2>>;

export async function connectPm2(runDir: string) {
  // Loading PM2 creates PM2_HOME (~/.pm2 when unset), and the daemon it spawns reads it from the environment.
  process.env.PM2_HOME = pm2Home(runDir);
  const { default: PM2 } = await import('pm2');
  const pm2 = new (PM2 as unknown as { custom: new (options: object) => typeof PM2 }).custom({
    pm2_home: pm2Home(runDir),
  });
  const call = (run: (done: (error: Error | null) => void) => void) => promisify(run)() as Promise<void>;
  await call((done) => pm2.connect((error) => done(error)));
  return {
    start: (app: StartOptions) => call((done) => pm2.start(app, (error) => done(error))),
    remove: (name: string) => call((done) => pm2.delete(name, (error) => done(error))),
    list: promisify(pm2.list.bind(pm2)) as () => Promise<ProcessDescription[]>,
    kill: () => call((done) => pm2.killDaemon((error) => done(error))),
    disconnect: () => pm2.disconnect(),
  };
}

/** Alive and not a zombie (an orphan of a killed daemon may wait long for init to reap it). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.charAt(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

function livePid(file: string, runDir?: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8'));
    const ours = !runDir || readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`RUN_DIR=${runDir}`);
    return pid > 0 && alive(pid) && ours ? pid : undefined;
  } catch {
    return undefined;
  }
}

export const daemonPid = (runDir: string) => livePid(join(pm2Home(runDir), 'pm2.pid'));

/** What a daemon killed with -9 left running: the pids PM2 wrote, each checked for the stack's RUN_DIR. */
export function orphans(runDir: string): number[] {
  const dir = join(pm2Home(runDir), 'pids');
  const pids = (existsSync(dir) ? readdirSync(dir) : []).map((file) => livePid(join(dir, file), runDir));
  return pids.filter((pid) => pid !== undefined);
}

/** SIGINT (PM2's stop signal), then SIGKILL to those still alive after graceMs. */
export async function endProcesses(pids: readonly number[], graceMs: number): Promise<void> {
  const signal = (name: string) => spawnSync('kill', ['-s', name, ...pids.filter(alive).map(String)]);
  signal('SIGINT');
  await pollUntil(async () => !pids.some(alive), graceMs, 100);
  signal('SIGKILL');
}

export type Env = Record<string, string>;
const stackFile = (runDir: string) => join(runDir, 'stack.json');
/** The environment make up gave the instances, with every port and URL it settled on (0600: it holds keys). */
export const writeStack = (runDir: string, env: Env) =>
  writeFileSync(stackFile(runDir), JSON.stringify(env, null, 2), { mode: 0o600 });
export const removeStack = (runDir: string) => rmSync(stackFile(runDir), { force: true });

export function readStack(runDir: string): Env | undefined {
  try {
    return JSON.parse(readFileSync(stackFile(runDir), 'utf8')) as Env;
  } catch {
    return undefined;
  }
}

export const publicUrl = ({ PUBLIC_BIND, PUBLIC_PORT }: StackSettings) =>
  `http://${PUBLIC_BIND === '0.0.0.0' ? '127.0.0.1' : PUBLIC_BIND}:${PUBLIC_PORT}`;

/** managed: a PM2 app of the stack (else it already ran) · pid: while PM2 has it online. */
export type Service = { url: string; managed: boolean; pid: number | null };
export type RunState = NonNullable<Awaited<ReturnType<typeof runState>>>;
/** starting: running, /readyz not yet 200 · ready · restarting: died, PM2 restarts it after its backoff. */
type InstanceStatus = 'starting' | 'ready' | 'restarting';

/** The stack as make up left it (stack.json) and as PM2 and each /readyz see it now; undefined when not running. */
export async function runState(pm2: Pm2, runDir: string) {
  const [env, daemon] = [readStack(runDir), daemonPid(runDir)];
  if (!env || !daemon) {
    return undefined;
  }
  const settings = loadStackSettings(env);
  const processes = await pm2.list();
  const pidOf = (name: string) => {
    const found = processes.find((entry) => entry.name === name);
    return found?.pm2_env?.status === 'online' && found.pid ? found.pid : null;
  };
  const managed = (name: string) => processes.some((entry) => entry.name === name);
  const service = (name: string, url: string): Service => ({ url, managed: managed(name), pid: pidOf(name) });
  const local = (port: number) => `http://127.0.0.1:${port}`;
  const instances = processes
    .filter((entry) => entry.name?.startsWith('backend-'))
    .map(async ({ name = '', pm2_env }) => {
      const [slot, pid] = [Number(name.slice('backend-'.length)), pidOf(name)];
      const port = slotPort(settings, slot - 1);
      const ready = pid !== null && (await httpOk(`${local(port)}/readyz`).catch(() => false));
      const status: InstanceStatus = pid === null ? 'restarting' : ready ? 'ready' : 'starting';
      return { slot, id: name, port, pid, status, restarts: pm2_env?.restart_time ?? 0 };
    });
  return {
    ...{ settings, publicUrl: publicUrl(settings), daemonPid: daemon },
    ...{ redis: service('redis', env.REDIS_URL ?? ''), postgres: service('postgres', env.DATABASE_URL ?? '') },
    caddy: service('caddy', local(settings.CADDY_ADMIN_PORT)),
    simulator: managed('simulator') ? service('simulator', env.GROQ_BASE_URL ?? '') : null,
    prometheus: managed('prometheus') ? service('prometheus', local(settings.PROMETHEUS_PORT)) : null,
    instances: (await Promise.all(instances)).sort((a, b) => a.slot - b.slot),
  };
}

/** The state of the stack in env's RUN_DIR, for tests and benches (undefined when nothing runs). */
export async function readRunState(env: Record<string, string | undefined>): Promise<RunState | undefined> {
  const { RUN_DIR } = loadStackSettings({ ...process.env, ...env });
  if (!daemonPid(RUN_DIR) || !readStack(RUN_DIR)) {
    return undefined;
  }
  const pm2 = await connectPm2(RUN_DIR);
  return runState(pm2, RUN_DIR).finally(() => pm2.disconnect());
}
