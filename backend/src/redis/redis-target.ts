import { readFileSync } from 'node:fs';
import type { RedisOptions } from 'ioredis';
import type { RedisEndpoint } from '../config.js';

/** The REDIS_* settings that say where Redis is and how to reach it (config.ts validates them). */
export interface RedisTargetSettings {
  REDIS_URL: string;
  REDIS_SENTINELS?: readonly RedisEndpoint[] | undefined;
  REDIS_CLUSTER_NODES?: readonly RedisEndpoint[] | undefined;
  REDIS_SENTINEL_NAME?: string | undefined;
  REDIS_PASSWORD?: string | undefined;
  REDIS_TLS_CA_FILE?: string | undefined;
}

/**
 * Where every connection of a process goes: one server, the primary that
 * Sentinel names (ioredis asks the sentinels again after each disconnect, and
 * listens for their failover announcements), or a Redis Cluster reached
 * through any of its nodes (`clusterNodes`; the other fields then apply to
 * every node). Built once per process, so the API, queue and subscriber
 * connections, and BullMQ's duplicates of them, all follow the same primary.
 */
export type RedisTarget = Readonly<
  { clusterNodes?: readonly RedisEndpoint[] } & Pick<
    RedisOptions,
    | 'host'
    | 'port'
    | 'username'
    | 'password'
    | 'db'
    | 'tls'
    | 'sentinels'
    | 'name'
    | 'enableTLSForSentinelMode'
    | 'sentinelTLS'
    | 'failoverDetector'
  >
>;

export function redisTarget(settings: RedisTargetSettings): RedisTarget {
  const url = new URL(settings.REDIS_URL);
  const ca = settings.REDIS_TLS_CA_FILE === undefined ? undefined : readFileSync(settings.REDIS_TLS_CA_FILE, 'utf8');
  const tls = url.protocol === 'rediss:' ? (ca === undefined ? {} : { ca }) : undefined;
  const credentials = {
    username: decodeURIComponent(url.username) || undefined,
    // REDIS_PASSWORD (or its _FILE) keeps the secret out of a URL that gets logged and shown.
    password: settings.REDIS_PASSWORD ?? (decodeURIComponent(url.password) || undefined),
    db: Number(url.pathname.slice(1) || 0),
    tls,
  };
  if (settings.REDIS_CLUSTER_NODES) {
    // A cluster has database 0 only; the nodes give their own addresses for the rest of the topology.
    return { ...credentials, db: 0, clusterNodes: settings.REDIS_CLUSTER_NODES.map((endpoint) => ({ ...endpoint })) };
  }
  if (!settings.REDIS_SENTINELS) {
    return {
      ...credentials,
      host: url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
      port: Number(url.port || 6379),
    };
  }
  return {
    ...credentials,
    sentinels: settings.REDIS_SENTINELS.map((endpoint) => ({ ...endpoint })),
    name: settings.REDIS_SENTINEL_NAME ?? 'mymaster',
    // The sentinels are reached as the data nodes are: TLS for both or neither.
    enableTLSForSentinelMode: tls !== undefined,
    sentinelTLS: tls,
    // Reconnect on the sentinels' +switch-master instead of waiting for the old primary's socket to fail.
    failoverDetector: true,
  };
}

/** For logs: where Redis is, without credentials. */
export function describeRedisTarget(target: RedisTarget): string {
  if (target.clusterNodes) {
    return `cluster via ${target.clusterNodes.map((node) => `${node.host}:${node.port}`).join(',')}${target.tls ? ' (tls)' : ''}`;
  }
  if (target.sentinels) {
    return `sentinel ${target.name} via ${target.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
  }
  return `${target.tls ? 'rediss' : 'redis'}://${target.host}:${target.port}/${target.db ?? 0}`;
}
