import { chmodSync, chownSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

/** PostgreSQL for the local stack: DATABASE_URL (or the default) when it lets us in, else a cluster of its own. */

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/focus';

/** A real `SELECT 1`. A missing database is ready: the server checks who we are first, the instances create it. */
export async function probePostgres(url: string, timeoutMs = 2000) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { state: 'ready' as const };
  } catch (error) {
    const { code = '', message } = error as { code?: string; message: string };
    // A SQLSTATE is a server saying no; anything else (refused, reset, timed out, not PostgreSQL) is no answer.
    if (code === '3D000') {
      return { state: 'ready' as const };
    }
    return /^\d[0-9A-Z]{4}$/.test(code) ? { state: 'refused' as const, reason: message } : { state: 'down' as const };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Debian keeps its binaries off PATH, in /usr/lib/postgresql/<version>/bin: the newest one wins. */
const BIN = 'PATH="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1):$PATH"';

/**
 * The stack's own cluster, as the command PM2 runs in $RUN_DIR/postgres: initdb once (superuser
 * postgres, trust auth; data kept across make down / make up), then postgres itself on a loopback
 * port, TCP only. As root, PM2 runs it as the postgres user (PostgreSQL refuses root), so that
 * user owns the directory.
 */
export function ownCluster(runDir: string, port: number): { cwd: string; command: string[]; asPostgres: boolean } {
  const cwd = join(runDir, 'postgres');
  mkdirSync(cwd, { recursive: true });
  const account = /^postgres:[^:]*:(\d+):(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8'));
  const asPostgres = process.getuid?.() === 0 && account !== null;
  if (asPostgres) {
    // The run directory may be a private temporary one: let the postgres user through it, no further.
    chmodSync(runDir, statSync(runDir).mode | 0o001);
    chownSync(cwd, Number(account[1]), Number(account[2]));
  }
  const initdb = 'initdb -D data -U postgres --auth=trust -E UTF8 --no-locale';
  const server = `postgres -D data -p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=`;
  return { cwd, command: ['sh', '-c', `${BIN}; [ -f data/PG_VERSION ] || ${initdb} && exec ${server}`], asPostgres };
}
