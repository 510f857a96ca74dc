import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { signUp } from '../helpers/accounts.js';
import { type ErrorBody, postChat, request } from '../helpers/http-client.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';
import { dropTestDatabase, queryDatabase, testDatabaseUrl } from '../helpers/test-database.js';

const NAT_IP = '198.51.100.20';

/** Two instances on one Redis prefix and one PostgreSQL database: users are the cluster's, not an instance's. */
describe('users across two instances', () => {
  const prefix = testPrefix('users');
  const databaseUrl = testDatabaseUrl('users');
  let simulator: GroqSimulator;
  let a: TestBackend;
  let b: TestBackend;
  let redis: Redis;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 1 });
    const env = {
      REDIS_PREFIX: prefix,
      DATABASE_URL: databaseUrl,
      GROQ_BASE_URL: simulator.url,
      GROQ_RPM: '0',
      GROQ_TPM: '0',
      MAX_REQUESTS_PER_MINUTE: '5',
      USER_REQUESTS_PER_MINUTE: '6',
      SIGNUPS_PER_IP_PER_HOUR: '100',
    };
    // Started together: both run the migrations, the advisory lock lets one do them.
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

  it('migrated the database once, though both instances started at the same time', async () => {
    const migrations = await queryDatabase<{ name: string }>(databaseUrl, 'SELECT name FROM pgmigrations');
    expect(migrations.map((row) => row.name)).toEqual(['1733000000000_users']);
  });

  it('accepts on B a token minted on A', async () => {
    const user = await signUp(a.url);
    const me = await request(`${b.url}/api/me`, { headers: user.headers });
    expect(me.status).toBe(200);
    expect(me.json).toMatchObject({ userId: user.userId, usage: { tokensToday: 0, budget: 50_000 } });
    const chat = await postChat(b.url, { message: 'How do I start the laundry?' }, { headers: user.headers });
    expect(chat.status).toBe(200);
  });

  it('holds the per-user limit across both instances', async () => {
    const user = await signUp(a.url);
    const statuses: number[] = [];
    for (let index = 0; index < 7; index += 1) {
      const target = index % 2 === 0 ? a : b;
      const response = await postChat(target.url, { message: `limit ${index}` }, { headers: user.headers });
      statuses.push(response.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429]);
  });

  it('gives 20 users behind one IP their own allowance, while an anonymous caller there is still limited', async () => {
    const users = await Promise.all(Array.from({ length: 20 }, () => signUp(a.url, NAT_IP)));
    // Users at once, each user's turns one after another (a user holds at most USER_MAX_CONCURRENT calls).
    const statuses = (
      await Promise.all(
        users.map(async (user, index) => {
          const mine: number[] = [];
          for (const turn of [0, 1, 2]) {
            const target = turn % 2 === 0 ? a : b;
            const response = await postChat(
              target.url,
              { message: `nat user ${index} turn ${turn}` },
              { ip: NAT_IP, headers: user.headers },
            );
            mine.push(response.status);
          }
          return mine;
        }),
      )
    ).flat();
    // 60 requests from one address: far over its anonymous limit of 5, yet every user is within theirs.
    expect(statuses.filter((status) => status === 200)).toHaveLength(60);

    const anonymous: number[] = [];
    for (let index = 0; index < 6; index += 1) {
      anonymous.push((await postChat(a.url, { message: `anonymous ${index}` }, { ip: NAT_IP })).status);
    }
    expect(anonymous).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it('counts active users by user, not by address', async () => {
    const users = await Promise.all([signUp(a.url, '198.51.100.30'), signUp(a.url, '198.51.100.30')]);
    for (const user of users) {
      await postChat(a.url, { message: 'active?' }, { ip: '198.51.100.30', headers: user.headers });
    }
    const wanted = users.map((user) => a.runtime.callerKeys.hash(`user:${user.userId}`));
    // The instance writes its batch of samples every 250 ms.
    await expect
      .poll(async () => {
        const members = await redis.zrange(`${prefix}{stats}:active-users`, '0', '-1');
        return wanted.filter((member) => members.includes(member)).length;
      })
      .toBe(2);
  });

  it('refuses a bad token instead of treating its caller as anonymous', async () => {
    const response = await postChat(a.url, { message: 'hi' }, { headers: { authorization: 'Bearer not.a.token' } });
    expect(response.status).toBe(401);
    expect((response.json as ErrorBody).error.code).toBe('invalid_token');
    expect(response.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  });
});
