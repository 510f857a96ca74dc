import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisEndpoint } from '../config.js';
import { createOutageReporter } from '../shared/outage.js';
import { type RedisTarget, redisTarget } from './redis-target.js';

export type { Redis };

/** A URL (one server, tests) or the process's target (Sentinel, password, TLS: see redis-target.ts). */
export type RedisClientOptions = ({ url: string } | { target: RedisTarget }) & {
  /** Shown by CLIENT LIST, so an operator can tell roles apart. */
  connectionName: string;
  commandTimeoutMs: number;
  logger: Logger;
  /**
   * BullMQ needs blocking commands that wait for ever and a queue of commands
   * while reconnecting; the request path needs the opposite: fail fast.
   */
  role?: 'request-path' | 'queue';
};

/**
 * The request path must never hang on Redis: commands fail at once while the
 * connection is down (no offline queue) and time out quickly when it is slow,
 * so callers degrade (cache miss, in-memory limiter) instead of waiting.
 */
export function createRedisClient(options: RedisClientOptions): Redis {
  const log = options.logger.child({ component: 'redis', connection: options.connectionName });
  const { clusterNodes, ...server } = 'target' in options ? options.target : redisTarget({ REDIS_URL: options.url });
  const retryStrategy = (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 6), 2000);
  const roleOptions: RedisOptions =
    options.role === 'queue'
      ? { maxRetriesPerRequest: null, enableOfflineQueue: true }
      : {
          maxRetriesPerRequest: 0,
          enableOfflineQueue: false,
          commandTimeout: options.commandTimeoutMs,
          connectTimeout: 2000,
          // The commands that concurrent requests send in one tick leave in one write: socket
          // writes were a fifth of a miss's CPU, 8.4 write calls per miss before, 2.35 after.
          enableAutoPipelining: true,
        };
  const client = clusterNodes
    ? clusterClient(clusterNodes, server, options.connectionName, roleOptions, retryStrategy)
    : new Redis({
        ...server,
        connectionName: options.connectionName,
        retryStrategy,
        // A primary demoted under us (failover, or a partition healed) answers writes with READONLY:
        // reconnect, which asks the sentinels for the current primary; the queue role resends the command.
        reconnectOnError: (error) =>
          error.message.startsWith('READONLY') ? (options.role === 'queue' ? 2 : 1) : false,
        lazyConnect: false,
        ...roleOptions,
      });

  // Log a state change once, not every reconnect attempt. ioredis emits
  // 'reconnecting' only when a connection drops unexpectedly (not on quit), and
  // at once, whereas 'error' waits for a reconnect attempt to fail.
  const outage = createOutageReporter({
    started: (reason) => log.warn({ err: { message: String(reason) } }, 'redis connection lost; degrading'),
    ended: () => log.info('redis connection restored'),
  });
  client.on('error', (error: Error) => outage.failed(error.message));
  client.on('reconnecting', () => outage.failed('connection closed'));
  client.on('ready', outage.succeeded);
  return client;
}

/**
 * ioredis' Cluster client: it routes each command to the master of its key's
 * slot and follows MOVED/ASK. The role's options apply on every node; whether
 * commands wait for a topology (offline queue) is the cluster's own option.
 *
 * Returned as the `Redis` type every module takes: Cluster answers the same
 * commands, pipelines, transactions, scripts and pub/sub. What it lacks are
 * per-server calls (SCAN streams over the whole keyspace, SELECT), which no
 * module makes; code that must reach every master asks `isCluster` first.
 */
function clusterClient(
  nodes: readonly RedisEndpoint[],
  server: Omit<RedisTarget, 'clusterNodes'>,
  connectionName: string,
  roleOptions: RedisOptions,
  retryStrategy: (attempt: number) => number,
): Redis {
  const { enableOfflineQueue, ...nodeOptions } = roleOptions;
  const cluster = new Cluster(
    nodes.map((node) => ({ ...node })),
    {
      redisOptions: {
        username: server.username,
        password: server.password,
        tls: server.tls,
        connectionName,
        ...nodeOptions,
      },
      enableOfflineQueue,
      clusterRetryStrategy: retryStrategy,
    },
  );
  return cluster as unknown as Redis;
}

/**
 * Opens a further connection to the process's Redis (named for CLIENT LIST):
 * made in runtime.ts, so every connection the process holds is opened there.
 */
export type RedisOpener = (name: string, role: NonNullable<RedisClientOptions['role']>) => Redis;

/** Resolves once the client is ready, or after timeoutMs (the caller degrades). */
export async function waitForRedis(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') {
    return true;
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}
