import { randomUUID } from 'node:crypto';
import pg from 'pg';

const SERVER = 'postgres://postgres@127.0.0.1:5432';

/** A database of its own for one test file (the backend creates and migrates it at start). */
export function testDatabaseUrl(name: string): string {
  return `${SERVER}/test_${name.replace(/\W/g, '_')}_${randomUUID().slice(0, 8)}`;
}

/** Runs one query against a test database. */
export async function queryDatabase<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Drops a test database after its backends are closed. */
export async function dropTestDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  await queryDatabase(`${SERVER}/postgres`, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}
