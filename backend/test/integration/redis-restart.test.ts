import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { waitFor } from '../helpers/backend-process.js';
import { request } from '../helpers/http-client.js';
import {
  getStatus,
  pollUntilDone,
  postQueue,
  QUEUE_TEST_ENV,
  type QueuedBody,
  type StatusBody,
} from '../helpers/queue-http.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { startTestBackend, type TestBackend } from '../helpers/test-backend.js';

const JOBS = 50;

/**
 * The queue survives a crash of Redis: 50 jobs wait on a slow upstream, the
 * stack's redis-server (its own flags: append-only, noeviction) is killed
 * with SIGKILL and started again on the same port and data directory. Every
 * job answered 202 completes, on the same two instances, which reconnect by
 * themselves.
 */
describe('Redis killed and restarted under a full queue', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'focus-redis-restart-'));
  let redis: RedisServer;
  let simulator: GroqSimulator;
  const backends: TestBackend[] = [];

  beforeAll(async () => {
    redis = await startRedisServer({ dataDir });
    simulator = await startGroqSimulator({ latencyMs: 250, apiKey: 'test-key' });
    for (const name of ['a', 'b']) {
      backends.push(
        await startTestBackend({
          ...QUEUE_TEST_ENV,
          REDIS_URL: redis.url,
          GROQ_BASE_URL: simulator.url,
          INSTANCE_ID: `restart-${name}`,
          QUEUE_CONCURRENCY: '2',
          QUEUE_MAX_WAITING: '1000',
          GROQ_TIMEOUT_MS: '20000',
        }),
      );
    }
  });

  afterAll(async () => {
    await Promise.all(backends.map((backend) => backend.close()));
    await simulator.close();
    await redis.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('completes every accepted job after a kill -9 and a restart on the same data', async () => {
    // Posted at once, not one after another: on a busy machine a serial loop let most jobs finish before the kill.
    const accepted = await Promise.all(
      Array.from({ length: JOBS }, async (_, index) => {
        const backend = backends[index % backends.length] as TestBackend;
        const ip = `192.0.2.${1 + (index % 10)}`;
        const posted = await postQueue(backend.url, { message: `Step ${index} of my plan, please` }, { ip });
        expect(posted.status).toBe(202);
        return { jobId: (posted.json as QueuedBody).jobId, backend, ip };
      }),
    );
    // Some jobs are running, most wait: the crash meets both.
    await waitFor(async () => simulator.stats().requests >= 4, 10_000, 'the first upstream calls');
    const doneBeforeKill = simulator.stats().requests;
    expect(doneBeforeKill).toBeLessThan(JOBS / 2);

    await redis.kill();
    const killedAt = Date.now();
    const during = await getStatus(backends[0]?.url as string, accepted[0]?.jobId as string, { ip: accepted[0]?.ip });
    expect(during.status).toBe(503);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    redis = await startRedisServer({ port: redis.port, dataDir });
    const restartedAt = Date.now();

    await Promise.all(
      backends.map((backend) =>
        waitFor(
          async () =>
            ((await request(`${backend.url}/readyz`)).json as { checks: { redis: string } }).checks.redis === 'up',
          10_000,
          'the instances to reconnect',
        ),
      ),
    );
    const reconnectedInMs = Date.now() - restartedAt;

    const finals = await Promise.all(
      accepted.map(({ jobId, backend, ip }) =>
        pollUntilDone(backend.url, jobId, { ip, timeoutMs: 60_000, intervalMs: 200 }),
      ),
    );
    const completed = finals.filter((body: StatusBody) => body.status === 'completed').length;
    const lost = JOBS - completed;
    // The figures for the README and the report.
    process.stdout.write(
      `redis restart: ${JOBS} accepted, ${doneBeforeKill} upstream calls before the kill, down ${restartedAt - killedAt} ms, ` +
        `instances ready ${reconnectedInMs} ms after the restart, ${completed} completed, ${lost} lost, ` +
        `${simulator.stats().requests} upstream calls in all\n`,
    );
    expect(finals.filter((body) => body.status !== 'completed')).toEqual([]);

    // Still the same processes, taking new work.
    const after = await postQueue(
      backends[1]?.url as string,
      { message: 'One more after the restart' },
      { ip: '192.0.2.99' },
    );
    expect(after.status).toBe(202);
    const afterDone = await pollUntilDone(backends[1]?.url as string, (after.json as QueuedBody).jobId, {
      ip: '192.0.2.99',
      timeoutMs: 20_000,
    });
    expect(afterDone.status).toBe('completed');
  }, 120_000);
});
