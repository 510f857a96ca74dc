import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { buildMessages } from '../../src/chat/chat-service.js';
import { estimateTokens } from '../../src/llm/quota-governor.js';
import { signUp } from '../helpers/accounts.js';
import { type ChatBody, type ErrorBody, postChat, request } from '../helpers/http-client.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';
import { dropTestDatabase, testDatabaseUrl } from '../helpers/test-database.js';

const BUDGET = 2000;
const MAX_TOKENS = 300;

/** Daily token budgets: reserved before the upstream call, settled with what it reported. */
describe('per-user token budget', () => {
  const prefix = testPrefix('budget');
  const databaseUrl = testDatabaseUrl('budget');
  let simulator: GroqSimulator;
  let backends: TestBackend[];

  beforeAll(async () => {
    // Slow enough that a burst is in flight at once.
    simulator = await startGroqSimulator({ latencyMs: 300 });
    const env = {
      REDIS_PREFIX: prefix,
      DATABASE_URL: databaseUrl,
      GROQ_BASE_URL: simulator.url,
      GROQ_RPM: '0',
      GROQ_TPM: '0',
      GROQ_MAX_TOKENS: String(MAX_TOKENS),
      USER_TOKENS_PER_DAY: String(BUDGET),
      USER_MAX_CONCURRENT: '50',
      USER_REQUESTS_PER_MINUTE: '1000',
    };
    backends = await Promise.all([startTestBackend(env), startTestBackend(env)]);
  });

  afterAll(async () => {
    await Promise.all((backends ?? []).map((backend) => backend.close()));
    await deleteTestPrefix(prefix);
    await dropTestDatabase(databaseUrl);
    await simulator?.close();
  });

  it('cuts concurrent requests at the budget and counts exactly what the upstream reported', async () => {
    const user = await signUp(backends[0]?.url as string);
    const message = (index: number) => `Budget question number ${index}: how do I start?`;
    const estimate = estimateTokens(buildMessages({ message: message(10), history: [] }), MAX_TOKENS);
    const callsBefore = simulator.stats().calls.length;

    // A burst on both instances at once: together far over the budget.
    const burst = await Promise.all(
      Array.from({ length: 12 }, (_, index) =>
        postChat((backends[index % 2] as TestBackend).url, { message: message(index) }, { headers: user.headers }),
      ),
    );
    const answered = burst.filter((response) => response.status === 200);
    const refused = burst.filter((response) => response.status === 429);
    expect(answered.length + refused.length).toBe(12);
    expect(answered.length).toBeGreaterThan(0);
    // Not "at most BUDGET / estimate": on a busy machine the burst's last requests arrive after its
    // first ones settled their smaller real usage. Twelve calls' real usage is over the budget all the same.
    expect(refused.length).toBeGreaterThan(0);
    for (const response of refused) {
      expect((response.json as ErrorBody).error.code).toBe('budget_exhausted');
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    // Refused requests never reached the upstream.
    expect(simulator.stats().calls.length - callsBefore).toBe(answered.length);

    // Then one at a time until the budget itself (not calls in flight) refuses.
    let last = burst[0];
    for (let index = 100; index < 130; index += 1) {
      last = await postChat((backends[0] as TestBackend).url, { message: message(index) }, { headers: user.headers });
      if (last.status === 200) {
        answered.push(last);
      } else {
        break;
      }
    }
    expect(last?.status).toBe(429);
    expect(Number(last?.headers.get('retry-after'))).toBeGreaterThan(2);

    const reported = answered.reduce((sum, response) => {
      const { usage } = response.json as ChatBody;
      return sum + usage.promptTokens + usage.completionTokens;
    }, 0);
    const me = await request(`${backends[1]?.url}/api/me`, { headers: user.headers });
    const { usage } = me.json as { usage: { tokensToday: number; budget: number } };
    expect(usage).toMatchObject({ tokensToday: reported, budget: BUDGET });
    // Never over the budget, and cut within one request's estimate of it.
    expect(usage.tokensToday).toBeLessThanOrEqual(BUDGET);
    expect(usage.tokensToday + estimate).toBeGreaterThan(BUDGET);

    // A cache hit costs no budget.
    const hit = await postChat((backends[0] as TestBackend).url, { message: message(100) }, { headers: user.headers });
    expect(hit.status).toBe(200);
    expect((hit.json as ChatBody).cached).toBe(true);
  });
});
