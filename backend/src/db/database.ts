import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import type { Logger } from '../telemetry/logger.js';

/**
 * PostgreSQL: accounts, never on the request path. The database is created
 * when missing and migrated at start; every instance runs the migrations and
 * node-pg-migrate's advisory lock (in "wait" mode) makes the later ones find
 * nothing left to do instead of racing the first.
 */

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));
const DUPLICATE_DATABASE = '42P04';
const UNIQUE_VIOLATION = '23505';

export interface DatabaseOptions {
  url: string;
  poolMax: number;
  /** Bounds connecting and each query, so a hung server is an error, not a hang. */
  timeoutMs: number;
  logger: Logger;
}

export type Database = pg.Pool;

export function createDatabase(options: DatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolMax,
    connectionTimeoutMillis: options.timeoutMs,
    query_timeout: options.timeoutMs,
    idleTimeoutMillis: 30_000,
  });
  // An idle client's connection dropping (server restart) must not crash the process; the next query reconnects.
  pool.on('error', (error) => options.logger.warn({ err: { message: error.message } }, 'postgres idle client error'));
  return pool;
}

/** CREATE DATABASE when the one in the URL does not exist (through the server's "postgres" database). */
export async function ensureDatabase(url: string, timeoutMs: number): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (name === '' || name === 'postgres') {
    return;
  }
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: timeoutMs });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    }
  } catch (error) {
    // Another instance created it between our check and our CREATE.
    const code = (error as { code?: string }).code;
    if (code !== DUPLICATE_DATABASE && code !== UNIQUE_VIOLATION) {
      throw error;
    }
  } finally {
    await client.end();
  }
}

/** Creates the database if needed and applies every pending migration; returns the names applied. */
export async function migrate(options: { url: string; timeoutMs: number; logger: Logger }): Promise<string[]> {
  await ensureDatabase(options.url, options.timeoutMs);
  const log = options.logger.child({ component: 'migrations' });
  const applied = await runner({
    databaseUrl: { connectionString: options.url, connectionTimeoutMillis: options.timeoutMs },
    dir: MIGRATIONS_DIR,
    migrationsTable: 'pgmigrations',
    direction: 'up',
    advisoryLockMode: 'wait',
    logger: { debug: () => undefined, info: () => undefined, warn: (m) => log.warn(m), error: (m) => log.error(m) },
  });
  return applied.map((migration) => migration.name);
}
