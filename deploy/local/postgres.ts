import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { freePort, isListening, pollUntil, redactUrl } from './ports.js';

/**
 * PostgreSQL for the local stack, in this order:
 *   1. DATABASE_URL (or the default) when a server answers there and lets us in;
 *   2. Debian's cluster on that port, started with pg_ctlcluster when it is down
 *      (and stopped again by make down);
 *   3. a cluster of our own in $RUN_DIR/postgres (initdb once, data kept across
 *      make down/up), on a free loopback port, started and stopped with pg_ctl.
 * The instances create the database and run their migrations themselves.
 */

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/focus';
const START_TIMEOUT_MS = 60_000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export type PostgresProbe =
  /** A server answers and lets us in (the database itself may not exist yet: the backend creates it). */
  | { state: 'ready'; databaseMissing: boolean }
  /** Nothing accepts connections there. */
  | { state: 'down' }
  /** A server answers but refuses us (authentication, permissions…). */
  | { state: 'refused'; reason: string };

function hostAndPort(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(parsed.port || 5432) };
}

async function selectOne(url: string, timeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The connection went (refused, reset, timed out, closed): no answer, as opposed to a server saying no. */
function lostConnection(error: Error & { code?: string }): boolean {
  return /^E[A-Z]+$/.test(error.code ?? '') || /timeout|terminated|ended unexpectedly/i.test(error.message);
}

/** A TCP connect, then a real `SELECT 1` (on the maintenance database when the wanted one does not exist yet). */
export async function probePostgres(url: string, timeoutMs = 2000): Promise<PostgresProbe> {
  let target: { host: string; port: number };
  try {
    target = hostAndPort(url);
  } catch {
    return { state: 'refused', reason: 'DATABASE_URL is not a URL' };
  }
  if (!(await isListening(target.port, target.host, timeoutMs))) {
    return { state: 'down' };
  }
  try {
    await selectOne(url, timeoutMs);
    return { state: 'ready', databaseMissing: false };
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    if (code !== '3D000') {
      return lostConnection(error as Error) ? { state: 'down' } : { state: 'refused', reason: message };
    }
  }
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  try {
    await selectOne(maintenance.toString(), timeoutMs);
    return { state: 'ready', databaseMissing: true };
  } catch (error) {
    return { state: 'refused', reason: (error as Error).message };
  }
}

/** The highest PostgreSQL of Debian's packages (/usr/lib/postgresql/<version>/bin), if any. */
export function postgresBinaries(root = '/usr/lib/postgresql'): { version: string; bin: string } | undefined {
  let versions: string[];
  try {
    versions = readdirSync(root);
  } catch {
    return undefined;
  }
  return versions
    .filter(
      (version) => existsSync(join(root, version, 'bin/initdb')) && existsSync(join(root, version, 'bin/postgres')),
    )
    .sort((a, b) => Number(b) - Number(a))
    .map((version) => ({ version, bin: join(root, version, 'bin') }))[0];
}

export interface SystemCluster {
  version: string;
  name: string;
  port: number;
  online: boolean;
  owner: string;
}

/** Debian's clusters (pg_lsclusters), empty when postgresql-common is not installed. */
export function systemClusters(): SystemCluster[] {
  const result = spawnSync('pg_lsclusters', ['--no-header'], { encoding: 'utf8' });
  if (result.status !== 0) {
    return [];
  }
  return result.stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 5)
    .map(([version, name, port, status, owner]) => ({
      version: version as string,
      name: name as string,
      port: Number(port),
      online: (status as string).startsWith('online'),
      owner: owner as string,
    }));
}

export function pgCtlCluster(cluster: { version: string; name: string }, action: 'start' | 'stop'): boolean {
  const result = spawnSync(
    'pg_ctlcluster',
    ['--skip-systemctl-redirect', cluster.version, cluster.name, action, ...(action === 'stop' ? ['-m', 'fast'] : [])],
    { encoding: 'utf8', timeout: START_TIMEOUT_MS },
  );
  return result.status === 0;
}

export function systemClusterOnline(cluster: { version: string; name: string }): boolean {
  return systemClusters().some(
    (found) => found.version === cluster.version && found.name === cluster.name && found.online,
  );
}

export interface PostgresService {
  url: string;
  /** none: a server that already ran · system: Debian's cluster, started here · own: $RUN_DIR/postgres. */
  managed: 'none' | 'system' | 'own';
  cluster: { version: string; name: string } | null;
}

/** Where the stack keeps its own cluster, and how it reports what it does. */
export interface PostgresContext {
  runDir: string;
  say: (line: string) => void;
}

const isRoot = () => process.getuid?.() === 0;

/** The postgres account's uid and gid (root must hand the cluster to it: initdb and postgres refuse root). */
function postgresAccount(): { uid: number; gid: number } {
  const result = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const group = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (result.status !== 0 || group.status !== 0) {
    throw new Error(
      'PostgreSQL refuses to run as root and there is no postgres user (apt-get install postgresql creates it)',
    );
  }
  return { uid: Number(result.stdout.trim()), gid: Number(group.stdout.trim()) };
}

/** Every directory above `path` must let the postgres user through. */
function checkReachable(path: string): void {
  for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) {
      throw new Error(`the postgres user cannot reach ${path} (${dir} is not o+x); choose another RUN_DIR`);
    }
  }
}

/** Runs a PostgreSQL binary, as the postgres user when we are root. */
function runAsPostgres(argv: string[], cwd?: string) {
  return isRoot()
    ? spawnSync('runuser', ['-u', 'postgres', '--', ...argv], { encoding: 'utf8', cwd })
    : spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', cwd });
}

/**
 * The stack's own cluster: `initdb` once into $RUN_DIR/postgres/data, then
 * `pg_ctl start` on a free loopback port (PostgreSQL's own daemon control:
 * its postmaster already restarts crashed backends), logging to server.log there.
 */
async function startOwnCluster(context: PostgresContext, wanted: string): Promise<PostgresService> {
  const binaries = postgresBinaries();
  if (!binaries) {
    throw new Error(
      'PostgreSQL does not answer and is not installed: apt-get install -y postgresql, or set DATABASE_URL',
    );
  }
  const home = join(context.runDir, 'postgres');
  const data = join(home, 'data');
  mkdirSync(home, { recursive: true });
  if (isRoot()) {
    const account = postgresAccount();
    // The run directory may be a private temporary one: let the postgres user through it, and no further.
    chmodSync(context.runDir, statSync(context.runDir).mode | 0o001);
    checkReachable(home);
    chownSync(home, account.uid, account.gid);
  }
  if (!existsSync(join(data, 'PG_VERSION'))) {
    context.say(`Creating the stack's PostgreSQL cluster in ${data} (initdb)…`);
    const initdb = ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale'];
    const result = runAsPostgres([join(binaries.bin, 'initdb'), ...initdb], home);
    if (result.status !== 0) {
      throw new Error(`initdb failed: ${(result.stderr || result.stdout || String(result.error)).trim()}`);
    }
  }
  const port = await freePort();
  const log = join(home, 'server.log');
  // Loopback TCP only, no Unix socket (its path would depend on the run directory's length).
  const options = `-p ${port} -h 127.0.0.1 -k ''`;
  const started = runAsPostgres([join(binaries.bin, 'pg_ctl'), 'start', '-D', data, '-l', log, '-o', options], home);
  // The database the instances asked for (they create it), on our server, as its superuser.
  const database = new URL(wanted).pathname.replace(/^\/$/, '') || '/focus';
  const url = `postgres://postgres@127.0.0.1:${port}${database}`;
  const ready = async () => (await probePostgres(url, 1000)).state === 'ready';
  if (started.status !== 0 || !(await pollUntil(ready, START_TIMEOUT_MS, 300))) {
    stopPostgres(context.runDir, { managed: 'own', cluster: null });
    throw new Error(`PostgreSQL did not start on port ${port}; see ${log}`);
  }
  return { url, managed: 'own', cluster: null };
}

/** Debian's cluster on the wanted loopback port, when it is down and we may start it (root or its owner). */
function stoppedSystemCluster(wanted: string): SystemCluster | undefined {
  let target: { host: string; port: number };
  try {
    target = hostAndPort(wanted);
  } catch {
    return undefined;
  }
  if (!LOOPBACK.has(target.host)) {
    return undefined;
  }
  const me = userInfo().username;
  return systemClusters().find(
    (cluster) => cluster.port === target.port && !cluster.online && (isRoot() || cluster.owner === me),
  );
}

/** What the CLI checks before it starts anything: whether the stack must start a PostgreSQL, and can. */
export function canStartPostgres(): boolean {
  return postgresBinaries() !== undefined;
}

/** Debian's cluster, started; undefined when it would not start or then refuses the stack (it is stopped again). */
async function startSystemCluster(
  context: PostgresContext,
  cluster: SystemCluster,
  wanted: string,
): Promise<PostgresService | undefined> {
  const name = `${cluster.version}/${cluster.name}`;
  context.say(`PostgreSQL does not answer: starting Debian's cluster ${name}…`);
  if (!pgCtlCluster(cluster, 'start')) {
    context.say(`pg_ctlcluster could not start ${name}.`);
    return undefined;
  }
  let answer: PostgresProbe = { state: 'down' };
  const answered = async () => {
    answer = await probePostgres(wanted, 1000);
    return answer.state !== 'down';
  };
  await pollUntil(answered, START_TIMEOUT_MS, 300);
  const started = { version: cluster.version, name: cluster.name };
  if ((answer as PostgresProbe).state === 'ready') {
    return { url: wanted, managed: 'system', cluster: started };
  }
  // It runs but will not let us in (a password on loopback, say): leave it as we found it.
  context.say(`Debian's cluster ${name} refuses the stack; stopping it again.`);
  pgCtlCluster(started, 'stop');
  return undefined;
}

export async function providePostgres(context: PostgresContext, env: NodeJS.ProcessEnv): Promise<PostgresService> {
  const explicit = Boolean(env.DATABASE_URL);
  const wanted = env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const probe = await probePostgres(wanted);
  if (probe.state === 'ready') {
    return { url: wanted, managed: 'none', cluster: null };
  }
  if (probe.state === 'refused') {
    if (explicit) {
      throw new Error(`PostgreSQL at DATABASE_URL (${redactUrl(wanted)}) refuses the stack: ${probe.reason}`);
    }
    return startOwnCluster(context, wanted);
  }
  const cluster = stoppedSystemCluster(wanted);
  const system = cluster ? await startSystemCluster(context, cluster, wanted) : undefined;
  return system ?? startOwnCluster(context, wanted);
}

/**
 * Stops what providePostgres started, if it still runs: Debian's cluster only
 * when make up started it, our own by its data directory (pg_ctl, fast shutdown).
 */
export function stopPostgres(
  runDir: string,
  service: Pick<PostgresService, 'managed' | 'cluster'> | undefined,
): string | undefined {
  if (service?.managed === 'system' && service.cluster && systemClusterOnline(service.cluster)) {
    pgCtlCluster(service.cluster, 'stop');
    return `Stopped Debian's PostgreSQL cluster ${service.cluster.version}/${service.cluster.name} (make up had started it).`;
  }
  const data = join(runDir, 'postgres/data');
  const binaries = postgresBinaries();
  if (!binaries || !existsSync(join(data, 'postmaster.pid'))) {
    return undefined;
  }
  if (runAsPostgres([join(binaries.bin, 'pg_ctl'), 'status', '-D', data]).status !== 0) {
    return undefined;
  }
  runAsPostgres([join(binaries.bin, 'pg_ctl'), 'stop', '-D', data, '-m', 'fast', '-w', '-t', '30']);
  return `Stopped the stack's own PostgreSQL (${data}).`;
}
