import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { StartOptions } from 'pm2';
import { durableRedisArgs } from './redis-flags.js';
import { type Env, instanceId, logFile, REPO_ROOT, type StackSettings, slotPort } from './stack.js';

/**
 * What PM2 runs. Each app runs its command itself (interpreter none: PM2's pid is the process's),
 * restarts with exponential backoff (100 ms, x1.5 up to 15 s, reset after 30 s up), logs to
 * $RUN_DIR/logs/<name>.log and carries RUN_DIR (see orphans() in stack.ts).
 */

export const slotsSocket = (runDir: string) => join(runDir, 'slots.sock');
export const SLOTS = join(import.meta.dirname, 'slots.py');

function app(settings: StackSettings, name: string, [script, ...args]: string[], options: StartOptions = {}) {
  const log = logFile(settings.RUN_DIR, name);
  mkdirSync(dirname(log), { recursive: true });
  const run = { name, script, args, cwd: REPO_ROOT, interpreter: 'none', exp_backoff_restart_delay: 100 };
  const logs = { output: log, error: log, merge_logs: true, kill_timeout: 10_000 };
  const env = { PATH: process.env.PATH ?? '', ...options.env, RUN_DIR: settings.RUN_DIR };
  return { ...run, ...logs, ...options, env } satisfies StartOptions;
}

/** Holds each slot's listening socket across its instance's death (slots.py says why). */
export const slotsApp = (settings: StackSettings) =>
  app(settings, 'slots', ['python3', SLOTS, 'hold', slotsSocket(settings.RUN_DIR)]);

/** npm start's arguments to node (`node <V8 flags> dist/src/main.js`), which the image's CMD repeats. */
export function npmStartArgs(): string[] {
  const { scripts } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const args = /^node (.*dist\/src\/main\.js)$/.exec(scripts.start)?.[1];
  if (args === undefined) {
    throw new Error(`package.json start is not "node <flags> dist/src/main.js": ${scripts.start}`);
  }
  return args.split(' ');
}

export function instanceApp(settings: StackSettings, slot: number, env: Env) {
  const port = String(slotPort(settings, slot));
  const node = [process.execPath, ...npmStartArgs()];
  return app(settings, instanceId(slot), ['python3', SLOTS, 'exec', slotsSocket(settings.RUN_DIR), port, ...node], {
    env: { ...env, HOST: '127.0.0.1', PORT: port, INSTANCE_ID: instanceId(slot) },
    // The instance bounds its own graceful shutdown (drain, finish, exit); this only catches a hung one.
    kill_timeout: Number(env.SHUTDOWN_TIMEOUT_MS || 15_000) + 5000,
  });
}

/** Queued jobs outlive a restart of redis-server: its append-only file stays in $RUN_DIR/redis. */
export function redisApp(settings: StackSettings, port: number, password: string, maxmemory?: string) {
  const dir = join(settings.RUN_DIR, 'redis');
  const config = join(settings.RUN_DIR, 'redis.conf');
  mkdirSync(dir, { recursive: true });
  // The instances send REDIS_PASSWORD: ours asks for it, from a file (argv shows in ps).
  writeFileSync(config, password && `requirepass "${password.replace(/["\\]/g, '\\$&')}"\n`, { mode: 0o600 });
  return app(settings, 'redis', ['redis-server', config, ...durableRedisArgs({ port, dir, maxmemory })], { cwd: dir });
}

/** The stack's own PostgreSQL (postgres.ts): SIGINT, PM2's stop signal, is its fast shutdown. */
export function postgresApp(settings: StackSettings, cluster: { cwd: string; command: string[]; asPostgres: boolean }) {
  const user = cluster.asPostgres ? { uid: 'postgres', gid: 'postgres' } : {};
  return app(settings, 'postgres', cluster.command, { cwd: cluster.cwd, ...user } as StartOptions);
}

/** The simulator as built, like the instances: through tsx, its start cost 0.7 CPU-s more. */
export const simulatorApp = (settings: StackSettings, port: number, env: Env) =>
  app(settings, 'simulator', [process.execPath, 'dist/sim/main.js'], {
    env: { ...env, SIM_PORT: String(port), SIM_HOST: '127.0.0.1' },
  });

/** Caddy on deploy/caddy/Caddyfile; every slot is an upstream, so scaling never reloads it. */
export function caddyApp(settings: StackSettings, env: Env) {
  const { PUBLIC_PORT, PUBLIC_BIND, PUBLIC_STATS, CADDY_ADMIN_PORT, MAX_INSTANCES, RUN_DIR } = settings;
  const slots = Array.from({ length: MAX_INSTANCES }, (_, slot) => `127.0.0.1:${slotPort(settings, slot)}`);
  const vars = { PUBLIC_PORT, PUBLIC_BIND, PUBLIC_STATS, CADDY_ADMIN_PORT, BACKEND_UPSTREAMS: slots.join(' ') };
  const strings = Object.fromEntries(Object.entries(vars).map(([name, value]) => [name, String(value)]));
  // Caddy's autosave and storage stay in the run directory, not in the user's home.
  const home = { XDG_DATA_HOME: join(RUN_DIR, 'caddy/data'), XDG_CONFIG_HOME: join(RUN_DIR, 'caddy/config') };
  const command = ['caddy', 'run', '--config', 'deploy/caddy/Caddyfile', '--adapter', 'caddyfile'];
  return app(settings, 'caddy', command, { env: { ...env, ...home, ...strings } });
}

/** targets/*.json, the file_sd files of prometheus.local.yml, each written then renamed (never read half-written). */
function writeTargetFile(settings: StackSettings, name: string, targets: [port: number, instance: string][]) {
  const file = join(settings.RUN_DIR, 'prometheus/targets', `${name}.json`);
  const groups = targets.map(([port, instance]) => ({ targets: [`127.0.0.1:${port}`], labels: { instance } }));
  writeFileSync(`${file}.tmp`, JSON.stringify(groups, null, 2));
  renameSync(`${file}.tmp`, file);
}

/** Instances 1…count (make scale rewrites it), label instance=<INSTANCE_ID>. */
export function writeTargets(settings: StackSettings, count: number): void {
  if (existsSync(join(settings.RUN_DIR, 'prometheus/targets'))) {
    const slots = Array.from({ length: count }, (_, slot) => [slotPort(settings, slot), instanceId(slot)] as const);
    writeTargetFile(settings, 'backends', slots as [number, string][]);
  }
}

/** The contract with prometheus/ (deploy/local/README.md): its two files copied, the targets beside them. */
export function prometheusApp(settings: StackSettings, count: number) {
  const [from, dir] = [settings.PROMETHEUS_CONFIG_DIR, join(settings.RUN_DIR, 'prometheus')];
  mkdirSync(join(dir, 'targets'), { recursive: true });
  copyFileSync(join(from, 'prometheus.local.yml'), join(dir, 'prometheus.yml'));
  if (existsSync(join(from, 'alerts.yml'))) {
    copyFileSync(join(from, 'alerts.yml'), join(dir, 'alerts.yml'));
  }
  writeTargetFile(settings, 'caddy', [[settings.CADDY_ADMIN_PORT, 'caddy']]);
  writeTargets(settings, count);
  const listen = `--web.listen-address=127.0.0.1:${settings.PROMETHEUS_PORT}`;
  // Its data here, not in the build's default (Debian's: /var/lib/prometheus/metrics2, shared by every run).
  const command = ['prometheus', '--config.file=prometheus.yml', '--storage.tsdb.path=data', listen];
  return app(settings, 'prometheus', command, { cwd: dir });
}
