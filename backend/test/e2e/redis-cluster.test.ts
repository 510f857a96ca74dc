import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { queueKeys } from '../../src/queue/queue-keys.js';
import { callerKeys } from '../../src/redis/caller-key.js';
import { signUp } from '../helpers/accounts.js';
import { type BackendProcess, startBackendProcess } from '../helpers/backend-process.js';
import { type ChatBody, type ErrorBody, postChat, request, type TestResponse } from '../helpers/http-client.js';
import { pollUntilDone, postQueue, QUEUE_TEST_ENV, type QueuedBody } from '../helpers/queue-http.js';
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.js';
import { keysMentioning } from '../helpers/redis-scan.js';
import { readEvents } from '../helpers/sse.js';
import { testPrefix } from '../helpers/test-backend.js';
import { dropTestDatabase, testDatabaseUrl } from '../helpers/test-database.js';

const PASSWORD = 'cluster-test-password';
const CALLER_SALT = 'cluster-test-caller-salt';
const IP_LIMIT = 15;
const QUOTA_RPM = 2;
/** Three instances and six Redis servers start on a machine other tests share. */
const STARTUP = { readyTimeoutMs: 120_000 };
const SECRET = 'I keep putting off calling the dentist about my tooth';

/**
 * What a Redis Cluster answers a client that routes a key to the wrong node or
 * a script across slots, what ioredis says of a pipeline across nodes, and
 * any Redis failure a component degraded on (its once-per-outage warning).
 */
const CLUSTER_ERRORS = /MOVED|CROSSSLOT|ASK |\bERR\b|non local key|same slots allocation group|failing, degrading/;

/**
 * The app on a six-node Redis Cluster (Debian's redis-server with
 * --cluster-enabled, three masters and three replicas, a password on every
 * node): two backend processes share one prefix, a third has a prefix and an
 * upstream of its own with a 2-request-a-minute quota. Every feature that
 * keeps state in Redis runs once: the cache, the limiter, the quota governor,
 * the queue, a stream, a user's budget, account deletion and the stats. No
 * request may fail other than as the feature under test says, and no
 * redirection or cross-slot error may reach the logs.
 */
describe('Redis Cluster', () => {
  const dir = mkdtempSync(join(tmpdir(), 'focus-cluster-'));
  const prefix = testPrefix('cluster');
  const quotaPrefix = testPrefix('cluster-quota');
  const databaseUrl = testDatabaseUrl('cluster');
  let cluster: RedisCluster;
  let redis: Cluster;
  let simulator: GroqSimulator;
  let quotaSimulator: GroqSimulator;
  const backends: BackendProcess[] = [];
  let quotaBackend: BackendProcess;
  /** Every backend process started, whether or not its siblings came up. */
  const started: BackendProcess[] = [];
  const unexpected: { what: string; status: number; body: string }[] = [];

  /** A response whose status is not the one the step expects is kept, so the last check lists them all. */
  function expectStatus(what: string, response: TestResponse, ...statuses: number[]): TestResponse {
    if (!statuses.includes(response.status)) {
      unexpected.push({ what, status: response.status, body: response.text.slice(0, 300) });
    }
    expect(statuses, `${what}: ${response.text.slice(0, 300)}`).toContain(response.status);
    return response;
  }

  beforeAll(async () => {
    cluster = await startRedisCluster({ dir, password: PASSWORD });
    redis = cluster.client();
    const passwordFile = join(dir, 'redis-password');
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    simulator = await startGroqSimulator({ latencyMs: 20, chunkDelayMs: 5, apiKey: 'test-key' });
    quotaSimulator = await startGroqSimulator({ latencyMs: 20, apiKey: 'test-key' });
    const common = {
      ...QUEUE_TEST_ENV,
      REDIS_CLUSTER_NODES: cluster.nodes,
      REDIS_PASSWORD_FILE: passwordFile,
      DATABASE_URL: databaseUrl,
      LOG_CALLER_SALT: CALLER_SALT,
      // Room for a machine busy with other tests: a timed-out command would degrade, not fail, and blur what is tested.
      REDIS_COMMAND_TIMEOUT_MS: '2000',
      QUEUE_CONCURRENCY: '2',
    };
    // The three start at once (their starts overlap instead of adding up); each is kept for afterAll as it comes up.
    const start = async (env: Record<string, string>) => {
      const backend = await startBackendProcess(env, STARTUP);
      started.push(backend);
      return backend;
    };
    const shared = (name: string) => ({
      ...common,
      GROQ_BASE_URL: simulator.url,
      REDIS_PREFIX: prefix,
      INSTANCE_ID: `cluster-${name}`,
      MAX_REQUESTS_PER_MINUTE: String(IP_LIMIT),
      USER_REQUESTS_PER_MINUTE: '1000',
      GROQ_MAX_TOKENS: '100',
      USER_TOKENS_PER_DAY: '2000',
    });
    const [a, b, quota] = await Promise.all([
      start(shared('a')),
      start(shared('b')),
      start({
        ...common,
        GROQ_BASE_URL: quotaSimulator.url,
        REDIS_PREFIX: quotaPrefix,
        INSTANCE_ID: 'cluster-quota',
        GROQ_RPM: String(QUOTA_RPM),
        QUOTA_MAX_WAIT_MS: '0',
      }),
    ]);
    backends.push(a, b);
    quotaBackend = quota;
  }, 480_000);

  afterAll(async () => {
    await Promise.all(started.map((backend) => backend.stop()));
    await Promise.all([simulator?.close(), quotaSimulator?.close()]);
    await redis?.quit().catch(() => redis.disconnect());
    await cluster?.stop();
    await dropTestDatabase(databaseUrl);
    rmSync(dir, { recursive: true, force: true });
  });

  /** The master serving a key's slot, as the test's cluster client sees it. */
  async function primaryOf(key: string): Promise<Redis> {
    const slot = Number(await redis.cluster('KEYSLOT', key));
    const address = redis.slots[slot]?.[0];
    const node = redis.nodes('master').find((master) => `${master.options.host}:${master.options.port}` === address);
    expect(node, `master of slot ${slot}`).toBeDefined();
    return node as Redis;
  }

  const waitCalls = async (node: Redis) =>
    Number(/^cmdstat_wait:calls=(\d+)/m.exec(await node.info('commandstats'))?.[1] ?? 0);

  const [a, b] = [() => backends[0] as BackendProcess, () => backends[1] as BackendProcess];

  it('answers a miss, then the same question from the cache on the other instance', async () => {
    const body = { message: 'How do I start my tax return today?' };
    const miss = expectStatus('chat miss', await postChat(a().url, body, { ip: '198.51.100.1' }), 200);
    expect((miss.json as ChatBody).cached).toBe(false);
    const hit = expectStatus('chat hit', await postChat(b().url, body, { ip: '198.51.100.2' }), 200);
    expect(hit.json).toMatchObject({ cached: true, response: (miss.json as ChatBody).response });
  });

  it('asks the upstream once for the same new question asked on both instances at once', async () => {
    const before = simulator.stats().calls.length;
    const body = { message: 'Everyone asks this at once: how do I start the day?' };
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, index) =>
        postChat((index % 2 === 0 ? a() : b()).url, body, { ip: `198.51.100.${40 + index}` }),
      ),
    );
    for (const answer of answers) {
      expectStatus('coalesced', answer, 200);
    }
    expect(simulator.stats().calls.length - before).toBe(1);
  });

  it('limits a caller across both instances, with 429 past the limit', async () => {
    const ip = '198.51.100.3';
    for (let index = 0; index < IP_LIMIT; index += 1) {
      const backend = index % 2 === 0 ? a() : b();
      expectStatus('under the limit', await postChat(backend.url, { message: `Limit question ${index}` }, { ip }), 200);
    }
    const over = expectStatus('over the limit', await postChat(b().url, { message: 'One too many' }, { ip }), 429);
    expect((over.json as ErrorBody).error.code).toBe('rate_limited');
  });

  it('gates the upstream at its quota: past 2 requests a minute the call is refused, never sent', async () => {
    const calls = () => quotaSimulator.stats().calls.length;
    const refused: TestResponse[] = [];
    for (let index = 0; index < QUOTA_RPM + 2; index += 1) {
      const response = expectStatus(
        'quota',
        await postChat(quotaBackend.url, { message: `Quota question ${index}` }, { ip: `198.51.100.${10 + index}` }),
        200,
        503,
      );
      if (response.status === 503) {
        refused.push(response);
      }
    }
    expect(calls()).toBe(QUOTA_RPM);
    expect(refused.length).toBe(2);
    for (const response of refused) {
      expect((response.json as ErrorBody).error.code).toBe('upstream_rate_limited');
    }
  });

  it('queues a job on one instance and serves its result from the other', async () => {
    const ip = '198.51.100.20';
    const queued = expectStatus('queue', await postQueue(a().url, { message: 'Plan my morning, queued' }, { ip }), 202);
    const { jobId } = queued.json as QueuedBody;
    const done = await pollUntilDone(b().url, jobId, { ip, timeoutMs: 60_000, intervalMs: 200 });
    expect(done).toMatchObject({ status: 'completed', result: { cached: false } });
    // The admission waited for a replica of the queue's own primary (WAIT there, not on any master).
    const queuePrimary = await primaryOf(queueKeys(prefix).line);
    expect(await waitCalls(queuePrimary)).toBeGreaterThan(0);
    for (const master of redis.nodes('master').filter((node) => node !== queuePrimary)) {
      expect(await waitCalls(master)).toBe(0);
    }
  });

  it('streams an answer to its done event', async () => {
    const response = await fetch(`${a().url}/api/chat/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.21' },
      body: JSON.stringify({ message: 'Stream me a first step for the laundry' }),
    });
    expect(response.status).toBe(200);
    const events = await readEvents(response);
    expect(events.map((event) => event.event)).toContain('done');
    expect(events.map((event) => event.event)).not.toContain('error');
  });

  it("cuts a signed-in user at their day's budget", async () => {
    const user = await signUp(a().url, '198.51.100.30');
    let last: TestResponse | undefined;
    for (let index = 0; index < 40; index += 1) {
      last = await postChat(
        (index % 2 === 0 ? a() : b()).url,
        { message: `Budget question ${index}` },
        {
          headers: user.headers,
        },
      );
      if (last.status !== 200) {
        break;
      }
    }
    expectStatus('budget', last as TestResponse, 429);
    expect(((last as TestResponse).json as ErrorBody).error.code).toBe('budget_exhausted');
  });

  it("deletes a user's keys from every master", async () => {
    const user = await signUp(b().url, '198.51.100.31');
    const callerHash = callerKeys(CALLER_SALT).hash(`user:${user.userId}`);
    expectStatus('signed-in chat', await postChat(a().url, { message: SECRET }, { headers: user.headers }), 200);
    const queued = expectStatus(
      'signed-in queue',
      await postQueue(b().url, { message: `${SECRET}, queued` }, { headers: user.headers }),
      202,
    );
    await pollUntilDone(a().url, (queued.json as QueuedBody).jobId, { headers: user.headers, timeoutMs: 60_000 });
    const needles = [user.userId, callerHash, SECRET];
    // Keys of one user lie on several masters (their hash tags differ): every master is scanned.
    await expect.poll(() => keysMentioning(redis, prefix, needles)).not.toEqual([]);

    const deleted = await request(`${a().url}/api/me`, { method: 'DELETE', headers: user.headers });
    expectStatus('delete account', deleted, 204);
    // Past the instances' next stats flush and the deletion's second sweep of active users.
    await expect.poll(() => keysMentioning(redis, prefix, needles), { timeout: 10_000 }).toEqual([]);
    const me = await request(`${b().url}/api/me`, { headers: user.headers });
    expectStatus('deleted token', me, 401);
  });

  it('reports the same cluster-wide stats from either instance', async () => {
    interface Stats {
      activeUsers: number;
      cacheStats: { hits: number; misses: number };
    }
    const read = async (backend: BackendProcess) => {
      const stats = expectStatus('stats', await request(`${backend.url}/api/chat/stats`), 200).json as Stats;
      return {
        activeUsers: stats.activeUsers,
        cacheStats: { hits: stats.cacheStats.hits, misses: stats.cacheStats.misses },
      };
    };
    // Equal once both instances flushed their batch (every 250 ms).
    await expect
      .poll(async () => {
        const [fromA, fromB] = await Promise.all(backends.map(read));
        return JSON.stringify(fromA) === JSON.stringify(fromB) ? fromA : undefined;
      })
      .toMatchObject({ activeUsers: expect.any(Number), cacheStats: { hits: expect.any(Number) } });
    const stats = await read(a());
    expect(stats.activeUsers).toBeGreaterThan(1);
    expect(stats.cacheStats.hits).toBeGreaterThan(0);
    expect(stats.cacheStats.misses).toBeGreaterThan(0);
    expectStatus('dashboard', await request(`${a().url}/dashboard`), 200);
  });

  it('failed no request unexpectedly and logged no redirection, cross-slot or other error', () => {
    expect(unexpected).toEqual([]);
    for (const backend of [...backends, quotaBackend]) {
      const lines = backend.output().split('\n');
      expect(lines.filter((line) => CLUSTER_ERRORS.test(line))).toEqual([]);
      expect(lines.filter((line) => /"level":(50|60)/.test(line))).toEqual([]);
      // The start check read every master's eviction and persistence (each is configured alone).
      expect(lines.filter((line) => line.includes('Redis keeps queued jobs')).length).toBe(3);
    }
  });
});
