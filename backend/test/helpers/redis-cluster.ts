import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { freePort, waitFor } from './backend-process.js';
import { type RedisServer, startRedisServer } from './redis-server.js';

const run = promisify(execFile);

export interface RedisCluster {
  /** Every redis-server of the cluster, masters and replicas. */
  servers: RedisServer[];
  /** "127.0.0.1:port,…", as REDIS_CLUSTER_NODES takes it. */
  nodes: string;
  /** A Cluster client of the test's own (close it with quit()). */
  client(): Cluster;
  /** SIGKILL every server. */
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  /** Each node's nodes.conf goes under it. */
  dir: string;
  /** Six nodes: three masters with a replica each. */
  size?: number;
  /** requirepass and masterauth on every node. */
  password?: string;
}

/** CLUSTER INFO of one node says the cluster serves every slot. */
async function clusterOk(port: number, password: string | undefined): Promise<boolean> {
  const client = new Redis({ port, password, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await client.connect();
    const info = (await client.call('CLUSTER', 'INFO')) as string;
    return /^cluster_state:ok\r?$/m.test(info) && /^cluster_slots_assigned:16384\r?$/m.test(info);
  } finally {
    client.disconnect();
  }
}

/**
 * A local Redis Cluster of Debian's redis-server (`--cluster-enabled yes`) on
 * private ports, joined with `redis-cli --cluster create`: three masters and
 * three replicas by default. Resolves once every node reports cluster_state:ok.
 */
export async function startRedisCluster(options: RedisClusterOptions): Promise<RedisCluster> {
  const size = options.size ?? 6;
  const auth = options.password ? ['--requirepass', options.password, '--masterauth', options.password] : [];
  const servers: RedisServer[] = [];
  try {
    for (let index = 0; index < size; index += 1) {
      const dir = join(options.dir, `node-${index}`);
      mkdirSync(dir, { recursive: true });
      servers.push(
        // The stack's own flags (append-only, noeviction), as a production cluster would run.
        await startRedisServer({
          dataDir: dir,
          args: [
            ...['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf')],
            // The bus port is port + 10000 by default, which may be taken or out of range.
            ...['--cluster-port', String(await freePort()), '--cluster-node-timeout', '5000'],
            ...auth,
          ],
        }),
      );
    }
    const endpoints = servers.map((server) => `127.0.0.1:${server.port}`);
    await run(
      'redis-cli',
      [
        ...(options.password ? ['-a', options.password, '--no-auth-warning'] : []),
        ...['--cluster', 'create', ...endpoints, '--cluster-replicas', '1', '--cluster-yes'],
      ],
      { timeout: 60_000 },
    );
    await waitFor(
      async () => (await Promise.all(servers.map((server) => clusterOk(server.port, options.password)))).every(Boolean),
      60_000,
      'cluster_state:ok on every node',
    );
    return {
      servers,
      nodes: endpoints.join(','),
      client: () =>
        new Cluster(
          servers.map((server) => ({ host: '127.0.0.1', port: server.port })),
          { redisOptions: { password: options.password } },
        ),
      async stop() {
        await Promise.all(servers.map((server) => server.kill()));
      },
    };
  } catch (error) {
    await Promise.all(servers.map((server) => server.kill()));
    throw error;
  }
}
