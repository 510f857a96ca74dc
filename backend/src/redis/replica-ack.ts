import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * Makes a write survive the loss of the primary before it is promised to a
 * client: WAIT returns once `replicas` replicas acknowledged every write this
 * connection made so far (the admit script and BullMQ's addJob included).
 *
 * WAIT blocks its connection for up to its timeout when no replica answers,
 * so it is only sent when the primary reports connected replicas (INFO
 * replication, read again every few seconds and after any shortfall). A
 * primary with none (one Redis, as `make up` and compose run it; or a
 * Sentinel group whose replica is down) is not waited for: the write is then
 * only as durable as the primary's append-only file, and that is logged once.
 */
export interface ReplicaAck {
  /** Resolves once acknowledged, or at once when there is nothing to wait for; rejects when Redis fails. */
  confirm(): Promise<void>;
}

export interface ReplicaAckOptions {
  /** The connection that made the writes: WAIT counts that connection's writes only. */
  redis: Redis;
  /**
   * A key of the slot the writes went to. On a Redis Cluster, WAIT and INFO
   * must reach that slot's primary (a keyless command goes to any master), on
   * the cluster's own connection to it, which carried the writes.
   */
  key: string;
  replicas: number;
  timeoutMs: number;
  logger: Logger;
  /** How long a replica count read from INFO is trusted. */
  refreshMs?: number;
  now?: () => number;
}

export function createReplicaAck(options: ReplicaAckOptions): ReplicaAck {
  const { replicas, timeoutMs } = options;
  const primary = primaryFinder(options.redis, options.key);
  const replicaCount = replicaCounter(options.refreshMs ?? 5000, options.now ?? Date.now);
  const health = shortfallLog(options.logger.child({ component: 'replica-ack' }), replicas);
  let seenReplica = false;

  return {
    async confirm() {
      if (replicas === 0) {
        return;
      }
      try {
        const server = await primary();
        const connected = await replicaCount.read(server);
        if (connected === 0) {
          // Nothing to wait for. Logged only once a replica was seen: a single Redis never had one.
          if (seenReplica) {
            health.short({ connected }, 'the Redis primary has no replica connected');
          }
          return;
        }
        seenReplica = true;
        const wanted = Math.min(replicas, connected);
        const acked = Number(await server.wait(wanted, timeoutMs));
        if (acked < wanted) {
          replicaCount.forget();
          health.short({ connected, acked, timeoutMs }, 'a replica did not acknowledge a queued job in time');
        } else if (connected < replicas) {
          health.short({ connected, acked }, 'fewer replicas connected than REDIS_WAIT_REPLICAS');
        } else {
          health.recovered(acked);
        }
      } catch (error) {
        // After a reconnect the connection may reach another primary: count its replicas afresh.
        replicaCount.forget();
        throw error;
      }
    },
  };
}

/** The connection WAIT must go to: the client itself, or on a Redis Cluster the primary of the key's slot. */
function primaryFinder(redis: Redis, key: string): () => Promise<Redis> {
  let slot: number | undefined;
  return async () => {
    if (!('isCluster' in redis && redis.isCluster)) {
      return redis;
    }
    const cluster = redis as unknown as Cluster;
    slot ??= Number(await cluster.cluster('KEYSLOT', key));
    const address = cluster.slots[slot]?.[0];
    const node = cluster.nodes('master').find((master) => `${master.options.host}:${master.options.port}` === address);
    if (!node) {
      throw new Error(`no primary known for cluster slot ${slot}`);
    }
    return node;
  };
}

/** The primary's connected replicas (INFO replication), read again after refreshMs or after forget(). */
function replicaCounter(refreshMs: number, now: () => number) {
  let known: { replicas: number; at: number } | undefined;
  return {
    async read(server: Redis): Promise<number> {
      if (!known || now() - known.at > refreshMs) {
        const info = await server.info('replication');
        known = { replicas: Number(/^connected_slaves:(\d+)/m.exec(info)?.[1] ?? 0), at: now() };
      }
      return known.replicas;
    },
    forget(): void {
      known = undefined;
    },
  };
}

/** A shortfall is logged once, until replicas acknowledge again. */
function shortfallLog(log: Logger, replicas: number) {
  let short = false;
  return {
    short(detail: Record<string, number>, reason: string): void {
      if (!short) {
        short = true;
        log.warn(
          { wanted: replicas, ...detail },
          `${reason}: accepted jobs are on the primary only until a replica is back`,
        );
      }
    },
    recovered(acked: number): void {
      if (short) {
        short = false;
        log.info({ acked }, 'replicas acknowledge queued jobs again');
      }
    },
  };
}
