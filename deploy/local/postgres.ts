import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { freePort, isListening, pollUntil } from './ports.js';
import { redactUrl, type ServiceContext } from './services.js';
import { type SupervisedProcess, superviseProcess } from './supervised-process.js';

/**
 * PostgreSQL for the local stack, in this order:
 *   1. DATABASE_URL (or the default) when a server answers there and lets us in;
 *   2. Debian's cluster on that port, started with pg_ctlcluster when it is down
 *      (and stopped again by make down);
 *   3. a cluster of our own in $RUN_DIR/postgres (initdb once, data kept across
 *      make down/up), on a free loopback port, supervised like Redis.
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
  process: SupervisedProcess | undefined;
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

/** The stack's own cluster: `initdb` once into $RUN_DIR/postgres/data, then `postgres` on a free loopback port. */
async function startOwnCluster(
  context: ServiceContext,
  env: NodeJS.ProcessEnv,
  wanted: string,
): Promise<PostgresService> {
  const binaries = postgresBinaries();
  if (!binaries) {
    throw new Error(
      'PostgreSQL does not answer and is not installed: apt-get install -y postgresql, or set DATABASE_URL',
    );
  }
  const home = join(context.paths.dir, 'postgres');
  const data = join(home, 'data');
  const account = isRoot() ? postgresAccount() : undefined;
  mkdirSync(home, { recursive: true });
  if (account) {
    // The run directory may be a private temporary one: let the postgres user through it, and no further.
    chmodSync(context.paths.dir, statSync(context.paths.dir).mode | 0o001);
    checkReachable(home);
    chownSync(home, account.uid, account.gid);
  }
  if (!existsSync(join(data, 'PG_VERSION'))) {
    const initdb = [
      join(binaries.bin, 'initdb'),
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '-E',
      'UTF8',
      '--no-locale',
    ];
    context.logger.info({ data, version: binaries.version }, 'creating the stack’s PostgreSQL cluster (initdb)');
    const result = account
      ? spawnSync('runuser', ['-u', 'postgres', '--', ...initdb], { encoding: 'utf8', cwd: home })
      : spawnSync(initdb[0] as string, initdb.slice(1), { encoding: 'utf8', cwd: home });
    if (result.status !== 0) {
      throw new Error(`initdb failed: ${(result.stderr || result.stdout || String(result.error)).trim()}`);
    }
  }
  const port = await freePort();
  context.logger.warn({ port, data }, 'starting the stack’s own PostgreSQL');
  const child = superviseProcess({
    name: 'postgres',
    command: join(binaries.bin, 'postgres'),
    // Loopback TCP only, no Unix socket (its path would depend on the run directory's length).
    args: ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', ''],
    env: { PATH: env.PATH, RUN_DIR: context.paths.dir, LC_ALL: 'C' },
    cwd: home,
    logFile: context.paths.log('postgres'),
    logger: context.logger,
    restart: true,
    // Fast shutdown: by then the instances are gone.
    stopSignal: 'SIGINT',
    stopTimeoutMs: 30_000,
    onChange: context.onChange,
    ...(account ?? {}),
  });
  // The database the instances asked for (they create it), on our server, as its superuser.
  const database = new URL(wanted).pathname.replace(/^\/$/, '') || '/focus';
  const url = `postgres://postgres@127.0.0.1:${port}${database}`;
  if (!(await pollUntil(async () => (await probePostgres(url, 1000)).state === 'ready', START_TIMEOUT_MS, 300))) {
    await child.stop();
    throw new Error(`PostgreSQL did not answer on port ${port}; see ${context.paths.log('postgres')}`);
  }
  return { url, managed: 'own', cluster: null, process: child };
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

export async function providePostgres(context: ServiceContext, env: NodeJS.ProcessEnv): Promise<PostgresService> {
  const explicit = Boolean(env.DATABASE_URL);
  const wanted = env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const probe = await probePostgres(wanted);
  if (probe.state === 'ready') {
    context.logger.info(
      { postgres: redactUrl(wanted), databaseMissing: probe.databaseMissing },
      'using the running PostgreSQL',
    );
    return { url: wanted, managed: 'none', cluster: null, process: undefined };
  }
  if (probe.state === 'refused') {
    if (explicit) {
      throw new Error(`PostgreSQL at DATABASE_URL (${redactUrl(wanted)}) refuses the stack: ${probe.reason}`);
    }
    context.logger.warn({ wanted: redactUrl(wanted), reason: probe.reason }, 'PostgreSQL refuses the default user');
    return startOwnCluster(context, env, wanted);
  }
  const cluster = stoppedSystemCluster(wanted);
  if (cluster) {
    context.logger.warn(
      { cluster: `${cluster.version}/${cluster.name}` },
      'PostgreSQL not reachable; starting Debian’s cluster',
    );
    if (pgCtlCluster(cluster, 'start')) {
      const started = { version: cluster.version, name: cluster.name };
      let answer: PostgresProbe = { state: 'down' };
      await pollUntil(
        async () => {
          answer = await probePostgres(wanted, 1000);
          return answer.state !== 'down';
        },
        START_TIMEOUT_MS,
        300,
      );
      if ((answer as PostgresProbe).state === 'ready') {
        return { url: wanted, managed: 'system', cluster: started, process: undefined };
      }
      // It runs but will not let us in (a password on loopback, say): leave it as we found it.
      context.logger.warn(
        { cluster: `${cluster.version}/${cluster.name}` },
        'Debian’s cluster refuses the stack; stopping it again',
      );
      pgCtlCluster(started, 'stop');
    } else {
      context.logger.warn({ cluster: `${cluster.version}/${cluster.name}` }, 'pg_ctlcluster could not start it');
    }
  }
  return startOwnCluster(context, env, wanted);
}

/** Stops what providePostgres started (nothing for a server that already ran). */
export async function stopPostgres(service: PostgresService | undefined): Promise<void> {
  if (service?.managed === 'system' && service.cluster) {
    pgCtlCluster(service.cluster, 'stop');
  }
  await service?.process?.stop();
}

/**
 * After a supervisor that died: stops the PostgreSQL it started, if it still
 * runs. Our own cluster is found by its data directory's postmaster.pid (its
 * processes rewrite their environment with their titles, so the RUN_DIR marker
 * cannot find them); Debian's only when the state says make up started it.
 */
export function stopLeftoverPostgres(
  runDir: string,
  state: { managed: 'none' | 'system' | 'own'; cluster: { version: string; name: string } | null } | null,
): string | undefined {
  if (state?.managed === 'system' && state.cluster && systemClusterOnline(state.cluster)) {
    pgCtlCluster(state.cluster, 'stop');
    return `Stopped Debian's PostgreSQL cluster ${state.cluster.version}/${state.cluster.name} (make up had started it).`;
  }
  const data = join(runDir, 'postgres/data');
  const binaries = postgresBinaries();
  if (!binaries || !existsSync(join(data, 'postmaster.pid'))) {
    return undefined;
  }
  const pgCtl = [join(binaries.bin, 'pg_ctl'), 'stop', '-D', data, '-m', 'fast', '-w', '-t', '30'];
  const status = [join(binaries.bin, 'pg_ctl'), 'status', '-D', data];
  const run = (argv: string[]) =>
    isRoot()
      ? spawnSync('runuser', ['-u', 'postgres', '--', ...argv], { encoding: 'utf8' })
      : spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  if (run(status).status !== 0) {
    return undefined;
  }
  run(pgCtl);
  return `Stopped the stack's own PostgreSQL (${data}).`;
}
