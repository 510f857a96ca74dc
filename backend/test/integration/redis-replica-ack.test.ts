import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReplicaAck } from '../../src/redis/replica-ack.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { waitFor } from '../helpers/backend-process.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { LogCapture } from '../helpers/test-backend.js';

async function waitCalls(redis: Redis): Promise<number> {
  const stats = await redis.info('commandstats');
  return Number(/^cmdstat_wait:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
}

/**
 * Admission's WAIT: sent to a primary with a replica (and acknowledged), never
 * to a single Redis, and given up after its timeout once the replica is gone,
 * which is logged once, not per job.
 */
describe('the replica acknowledgement of queued jobs', () => {
  let primary: RedisServer;
  let replica: RedisServer;
  let single: RedisServer;
  const clients: Redis[] = [];

  const client = (server: RedisServer) => {
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    // The replica's client keeps trying once it is killed; nothing to report.
    redis.on('error', () => undefined);
    clients.push(redis);
    return redis;
  };

  beforeAll(async () => {
    primary = await startRedisServer();
    replica = await startRedisServer({ args: ['--replicaof', '127.0.0.1', String(primary.port)] });
    single = await startRedisServer();
    const replicaClient = client(replica);
    await waitFor(
      async () => /master_link_status:up/.test(await replicaClient.info('replication')),
      10_000,
      'the replica to sync',
    );
  });

  afterAll(async () => {
    for (const redis of clients) {
      redis.disconnect();
    }
    await Promise.all([primary, replica, single].map((server) => server.kill()));
  });

  it('never waits on a Redis without replicas', async () => {
    const redis = client(single);
    const logs = new LogCapture();
    const ack = createReplicaAck({
      redis,
      key: 'k',
      replicas: 1,
      timeoutMs: 200,
      logger: createLogger({ level: 'info', instanceId: 'ack-test' }, logs),
    });
    await redis.set('k', 'v');
    for (let round = 0; round < 5; round += 1) {
      await ack.confirm();
    }
    expect(await waitCalls(redis)).toBe(0);
    expect(logs.lines).toEqual([]);
  });

  it('waits for the replica, then, once it is gone, gives up after the timeout and says so once', async () => {
    const redis = client(primary);
    const logs = new LogCapture();
    let clock = 0;
    const ack = createReplicaAck({
      redis,
      key: 'k',
      replicas: 1,
      timeoutMs: 200,
      logger: createLogger({ level: 'info', instanceId: 'ack-test' }, logs),
      now: () => clock,
    });
    await redis.set('job', 'queued');
    await ack.confirm();
    expect(await waitCalls(redis)).toBe(1);
    expect(await client(replica).get('job')).toBe('queued');

    await replica.kill();
    // Until INFO is read again the primary may still count the dead replica: WAIT gives up after 200 ms.
    const started = Date.now();
    await redis.set('job', 'queued again');
    await ack.confirm();
    expect(Date.now() - started).toBeLessThan(1000);
    clock += 10_000;
    await waitFor(
      async () => /connected_slaves:0/.test(await redis.info('replication')),
      5000,
      'the primary to drop its replica',
    );
    for (let round = 0; round < 5; round += 1) {
      await ack.confirm();
    }
    const warnings = logs.lines.map((line) => JSON.parse(line) as { level: string; msg: string });
    expect(warnings.filter((line) => line.level === 'warn')).toHaveLength(1);
    expect(warnings[0]?.msg).toMatch(/accepted jobs are on the primary only/);
  });
});
