/**
 * The flags of every redis-server the stack starts (`make up`'s own, and the
 * tests' private ones). Append-only file, fsync once a second: a crash of
 * redis-server alone loses nothing it acknowledged (the write already reached
 * the kernel); a crash of the machine loses up to the last second or two.
 * noeviction, because BullMQ breaks when a job's key is evicted: under memory
 * pressure writes fail instead (a 503 for a new job, a miss-store for the
 * cache, whose entries all expire on their own).
 */
export const DEFAULT_REDIS_MAXMEMORY = '256mb';

export interface RedisFlagOptions {
  port: number;
  /** Where the append-only file lives: the same dir brings the same data back. */
  dir: string;
  /** redis-server's own units: 256mb, 1gb… (REDIS_MAXMEMORY). */
  maxmemory?: string;
}

export function parseRedisMaxmemory(value: string | undefined): string {
  const chosen = value?.trim() || DEFAULT_REDIS_MAXMEMORY;
  if (!/^[1-9]\d*(b|k|kb|m|mb|g|gb)?$/i.test(chosen)) {
    throw new Error(`REDIS_MAXMEMORY: expected a size such as 256mb or 1gb (got ${JSON.stringify(value)})`);
  }
  return chosen;
}

export function durableRedisArgs(options: RedisFlagOptions): string[] {
  return [
    '--port',
    String(options.port),
    '--bind',
    '127.0.0.1',
    '--dir',
    options.dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    // The append-only file is the persistence; RDB snapshots would only add forks.
    '--save',
    '',
    '--maxmemory',
    parseRedisMaxmemory(options.maxmemory),
    '--maxmemory-policy',
    'noeviction',
  ];
}
