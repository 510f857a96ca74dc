import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../deploy/local/ports.js';
import { waitFor } from '../helpers/backend-process.js';
import { type LocalStack, readLog, startLocalStack } from '../helpers/local-stack.js';
import { pollUntilDone, postQueue, type QueuedBody } from '../helpers/queue-http.js';

const PASSWORD = 'local-stack-redis-password';
const JOBS = 12;

/**
 * `make up` with no Redis at REDIS_URL starts its own redis-server with the
 * stack's flags (append-only, noeviction, REDIS_MAXMEMORY) and the instances'
 * REDIS_PASSWORD. Killed with SIGKILL, PM2 starts it again on the
 * same port and data: the jobs queued before the kill all complete.
 */
describe("make up's own redis-server", () => {
  let stack: LocalStack;
  let redis: Redis;

  beforeAll(async () => {
    stack = await startLocalStack(2, {
      // Nothing listens there: the stack starts its own.
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      REDIS_PASSWORD: PASSWORD,
      REDIS_MAXMEMORY: '64mb',
      // Jobs wait long enough for the kill to meet them.
      SIM_LATENCY_MS: '300',
      QUEUE_CONCURRENCY: '1',
      POLLS_PER_MINUTE: '100000',
    });
    redis = new Redis((await stack.state()).redis.url, { password: PASSWORD, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
  });

  afterAll(async () => {
    redis?.disconnect();
    await stack?.make('down');
  });

  it('runs with the append-only file, noeviction, the chosen maxmemory and the password', async () => {
    const state = await stack.state();
    expect(state.redis.managed).toBe(true);
    const config = (await redis.config(
      'GET',
      'appendonly',
      'appendfsync',
      'maxmemory-policy',
      'maxmemory',
    )) as string[];
    expect(
      Object.fromEntries(config.flatMap((value, index) => (index % 2 === 0 ? [[value, config[index + 1]]] : []))),
    ).toEqual({
      appendonly: 'yes',
      appendfsync: 'everysec',
      'maxmemory-policy': 'noeviction',
      maxmemory: String(64 * 1024 * 1024),
    });
    const port = new URL(state.redis.url).port;
    const anonymous = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', port, 'GET', 'x'], { encoding: 'utf8' });
    expect(anonymous.stdout + anonymous.stderr).toMatch(/NOAUTH/);
    expect(readLog(stack, 'backend-1')).toMatch(/Redis keeps queued jobs/);
  });

  it('keeps the queued jobs when its redis-server is killed and restarted by PM2', async () => {
    const accepted: { jobId: string; ip: string }[] = [];
    for (let index = 0; index < JOBS; index += 1) {
      const ip = `198.51.100.${index + 1}`;
      const posted = await postQueue(stack.publicUrl, { message: `Local stack job ${index}` }, { ip });
      expect(posted.status).toBe(202);
      accepted.push({ jobId: (posted.json as QueuedBody).jobId, ip });
    }
    const pid = (await stack.state()).redis.pid as number;
    process.kill(pid, 'SIGKILL');
    await waitFor(
      async () => {
        const next = (await stack.state()).redis.pid;
        return next !== null && next !== pid && (await redis.ping()) === 'PONG';
      },
      20_000,
      'PM2 to restart redis-server',
    );
    const finals = await Promise.all(
      accepted.map(({ jobId, ip }) =>
        pollUntilDone(stack.publicUrl, jobId, { ip, timeoutMs: 60_000, intervalMs: 250 }),
      ),
    );
    expect(finals.filter((body) => body.status !== 'completed')).toEqual([]);
  });
});
