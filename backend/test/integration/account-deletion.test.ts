import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { signUp } from '../helpers/accounts.js';
import { postChat, request } from '../helpers/http-client.js';
import { pollUntilDone, postQueue, type QueuedBody } from '../helpers/queue-http.js';
import { keysMentioning } from '../helpers/redis-scan.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';
import { dropTestDatabase, queryDatabase, testDatabaseUrl } from '../helpers/test-database.js';

const SECRET_WORRY = 'I keep forgetting my medication and my sister is angry';

/** DELETE /api/me: the account, and everything kept about the user on either instance, goes. */
describe('account deletion', () => {
  const prefix = testPrefix('deletion');
  const databaseUrl = testDatabaseUrl('deletion');
  let simulator: GroqSimulator;
  let a: TestBackend;
  let b: TestBackend;
  let redis: Redis;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 1 });
    const env = { REDIS_PREFIX: prefix, DATABASE_URL: databaseUrl, GROQ_BASE_URL: simulator.url, GROQ_RPM: '0' };
    [a, b] = await Promise.all([startTestBackend(env), startTestBackend(env)]);
    redis = new Redis();
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await redis?.quit();
    await deleteTestPrefix(prefix);
    await dropTestDatabase(databaseUrl);
    await simulator?.close();
  });

  it('exports what is stored, then deletes all of it, and the old token is refused everywhere', async () => {
    const user = await signUp(a.url);
    const other = await signUp(a.url);
    const needles = [user.userId, a.runtime.callerKeys.hash(`user:${user.userId}`), SECRET_WORRY];

    // Data in every place the backend keeps some: cache, budget, limits, active users, queue, idempotency.
    expect((await postChat(a.url, { message: SECRET_WORRY }, { headers: user.headers })).status).toBe(200);
    const queued = await postQueue(
      b.url,
      { message: `${SECRET_WORRY}, what now?` },
      { headers: { ...user.headers, 'idempotency-key': 'deletion-test-key-1' } },
    );
    expect(queued.status).toBe(202);
    const { jobId } = queued.json as QueuedBody;
    expect((await pollUntilDone(b.url, jobId, { headers: user.headers })).status).toBe('completed');
    // Someone else's job, untouched by the deletion.
    const theirs = await postQueue(a.url, { message: 'Plan my Sunday' }, { headers: other.headers });
    const theirJob = (theirs.json as QueuedBody).jobId;
    await pollUntilDone(a.url, theirJob, { headers: other.headers });

    const exported = await request(`${b.url}/api/me/export`, { headers: user.headers });
    expect(exported.status).toBe(200);
    expect(exported.json).toMatchObject({
      account: { userId: user.userId, kind: 'device' },
      usage: { budget: 50_000 },
      queuedJobs: [{ jobId, state: 'completed' }],
    });
    expect(exported.text).toContain(SECRET_WORRY);
    expect(((exported.json as { cachedAnswers: unknown[] }).cachedAnswers ?? []).length).toBeGreaterThan(0);
    await expect.poll(() => keysMentioning(redis, prefix, needles)).not.toEqual([]);
    // Every name is keyed: the plain hash of the user, which an IPv4 caller's would be reversible from, is nowhere.
    const plainHash = createHash('sha256').update(`user:${user.userId}`).digest('hex').slice(0, 16);
    expect(await keysMentioning(redis, prefix, [plainHash])).toEqual([]);

    const deleted = await request(`${a.url}/api/me`, { method: 'DELETE', headers: user.headers });
    expect(deleted.status).toBe(204);

    for (const backend of [a, b]) {
      const me = await request(`${backend.url}/api/me`, { headers: user.headers });
      expect(me.status).toBe(401);
      const chat = await postChat(backend.url, { message: 'still me?' }, { headers: user.headers });
      expect(chat.status).toBe(401);
    }
    // Past the instances' next stats flush (250 ms) and the deletion's second sweep of active users (1 s).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await keysMentioning(redis, prefix, needles)).toEqual([]);
    expect(await queryDatabase(databaseUrl, 'SELECT id FROM users WHERE id = $1', [user.userId])).toEqual([]);

    const stillTheirs = await request(`${a.url}/api/chat/status/${theirJob}`, { headers: other.headers });
    expect(stillTheirs.json).toMatchObject({ status: 'completed' });
  });
});
