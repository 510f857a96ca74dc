import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { signUp } from '../helpers/accounts.js';
import { type ChatBody, type ErrorBody, postChat, request } from '../helpers/http-client.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';
import { dropTestDatabase, testDatabaseUrl } from '../helpers/test-database.js';

/** USER_MAX_CONCURRENT over HTTP: the slot is taken with the budget reservation, and freed with its settlement. */
describe('per-user cap on concurrent calls', () => {
  const prefix = testPrefix('user-concurrency');
  const databaseUrl = testDatabaseUrl('user_concurrency');
  let simulator: GroqSimulator;
  let backend: TestBackend;

  beforeAll(async () => {
    // Slow enough that the whole burst arrives while the first calls are in flight.
    simulator = await startGroqSimulator({ latencyMs: 500 });
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      DATABASE_URL: databaseUrl,
      GROQ_BASE_URL: simulator.url,
      GROQ_RPM: '0',
      GROQ_TPM: '0',
      USER_TOKENS_PER_DAY: '100000',
      USER_MAX_CONCURRENT: '2',
      USER_REQUESTS_PER_MINUTE: '1000',
    });
  });

  afterAll(async () => {
    await backend?.close();
    await deleteTestPrefix(prefix);
    await dropTestDatabase(databaseUrl);
    await simulator?.close();
  });

  it('answers two calls at once, refuses the others with 429 too_many_concurrent, and charges only those answered', async () => {
    const user = await signUp(backend.url);
    const callsBefore = simulator.stats().calls.length;
    const burst = await Promise.all(
      Array.from({ length: 4 }, (_, index) =>
        postChat(backend.url, { message: `Concurrent question ${index}` }, { headers: user.headers }),
      ),
    );
    const answered = burst.filter((response) => response.status === 200);
    const refused = burst.filter((response) => response.status === 429);
    expect(answered).toHaveLength(2);
    expect(refused).toHaveLength(2);
    for (const response of refused) {
      expect((response.json as ErrorBody).error.code).toBe('too_many_concurrent');
      expect(response.headers.get('retry-after')).toBe('1');
    }
    expect(simulator.stats().calls.length - callsBefore).toBe(2);

    // The refused calls held no tokens; the answered ones count what the upstream reported.
    const reported = answered.reduce((sum, response) => {
      const { usage } = response.json as ChatBody;
      return sum + usage.promptTokens + usage.completionTokens;
    }, 0);
    const me = await request(`${backend.url}/api/me`, { headers: user.headers });
    expect((me.json as { usage: { tokensToday: number } }).usage.tokensToday).toBe(reported);

    // Both slots were freed with their settlement.
    const again = await Promise.all(
      [0, 1].map((index) => postChat(backend.url, { message: `Later question ${index}` }, { headers: user.headers })),
    );
    expect(again.map((response) => response.status)).toEqual([200, 200]);
  });
});
