/**
 * The flags of every redis-server the stack starts (make up's, and the tests' own). Append-only
 * file, fsync once a second: a crash of redis-server alone loses nothing it acknowledged; RDB
 * snapshots would only add forks. noeviction, because BullMQ breaks when a job's key is evicted:
 * under memory pressure writes fail instead. REDIS_MAXMEMORY (redis-server's units) caps it.
 */
export function durableRedisArgs(options: { port: number; dir: string; maxmemory?: string }): string[] {
  const maxmemory = options.maxmemory?.trim() || '256mb';
  if (!/^[1-9]\d*(b|k|kb|m|mb|g|gb)?$/i.test(maxmemory)) {
    throw new Error(`REDIS_MAXMEMORY: expected a size such as 256mb or 1gb (got ${JSON.stringify(maxmemory)})`);
  }
  return [
    ...['--port', String(options.port), '--bind', '127.0.0.1', '--dir', options.dir],
    ...['--appendonly', 'yes', '--appendfsync', 'everysec', '--save', ''],
    ...['--maxmemory', maxmemory, '--maxmemory-policy', 'noeviction'],
  ];
}
