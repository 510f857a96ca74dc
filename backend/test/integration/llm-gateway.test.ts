import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLlmGateway } from '../../src/llm/llm-gateway.js';
import { createProviderBreaker } from '../../src/llm/provider-breaker.js';
import { createQuotaGovernor } from '../../src/llm/quota-governor.js';
import type { Completion, CompletionRequest, LlmProvider } from '../../src/llm/types.js';
import { UpstreamError } from '../../src/llm/upstream-error.js';
import { createRedisClient, type Redis, waitForRedis } from '../../src/redis/redis-client.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { deletePrefix, testPrefix } from '../helpers/test-backend.js';

const logger = createLogger({ level: 'silent', instanceId: 'gateway-test' });
const UNLIMITED = { requestsPerMinute: 0, tokensPerMinute: 0, requestsPerDay: 0, tokensPerDay: 0 };
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A provider that answers at once and remembers the timeout each call was given. */
function recordingProvider(): LlmProvider & { timeouts: (number | undefined)[] } {
  const timeouts: (number | undefined)[] = [];
  return {
    name: 'groq',
    model: 'test-model',
    timeouts,
    async complete(request: CompletionRequest): Promise<Completion> {
      timeouts.push(request.timeoutMs);
      return { text: 'ok', model: 'test-model', provider: 'groq', usage: { promptTokens: 10, completionTokens: 5 } };
    },
  };
}

describe('llm gateway (real Redis quota, fake provider)', () => {
  const prefix = testPrefix('gateway');
  let redis: Redis;

  beforeAll(async () => {
    redis = createRedisClient({
      url: 'redis://127.0.0.1:6379',
      connectionName: 'gateway-test',
      commandTimeoutMs: 2000,
      logger,
    });
    expect(await waitForRedis(redis, 5000)).toBe(true);
  });

  afterAll(async () => {
    await deletePrefix({ redis }, prefix);
    await redis.quit();
  });

  it('starts the retry budget when quota is granted: a long quota wait does not shrink the call timeout', async () => {
    const metrics = createMetrics();
    const provider = recordingProvider();
    const quota = createQuotaGovernor({
      redis,
      prefix,
      provider: 'groq',
      limits: UNLIMITED,
      callTimeoutMs: 10_000,
      metrics,
      logger,
      tracker: createDegradationTracker('quota-groq', logger, metrics),
    });
    // Another instance saw a 429: every call waits 2.5 s, longer than the 2 s retry budget.
    const earlier = await quota.reserve(10, Date.now());
    await quota.settle(earlier.granted ? earlier.id : undefined, { kind: 'refused', tokens: 10, retryAfterMs: 2500 });

    const gateway = createLlmGateway({
      primary: {
        provider,
        quota,
        breaker: createProviderBreaker({ provider: 'groq', failureThreshold: 5, cooldownMs: 30_000, metrics, logger }),
      },
      retry: { maxAttempts: 3, budgetMs: 2000, baseDelayMs: 50, maxDelayMs: 400 },
      defaultQuotaWaitMs: 4000,
      metrics,
      logger,
    });
    const completion = await gateway.complete({
      messages: [{ role: 'user', content: 'hi' }],
      maxTokens: 50,
      temperature: 0,
    });
    expect(completion.text).toBe('ok');
    expect(provider.timeouts).toHaveLength(1);
    // Was MIN_CALL_MS (1 s): the budget had run out while waiting for quota.
    expect(provider.timeouts[0]).toBeGreaterThan(1900);
  });

  it('lets exactly one probe through a half-open circuit; concurrent calls are skipped, not queued behind it', async () => {
    const metrics = createMetrics();
    let calls = 0;
    let healthy = false;
    const provider: LlmProvider = {
      name: 'groq',
      model: 'test-model',
      async complete(): Promise<Completion> {
        calls += 1;
        if (!healthy) {
          throw new UpstreamError('unavailable', 'groq', 'upstream error 500', 500);
        }
        // Long enough that the other callers' reservations are all answered while it runs.
        await pause(800);
        return { text: 'ok', model: 'test-model', provider: 'groq', usage: { promptTokens: 1, completionTokens: 1 } };
      },
    };
    const gateway = createLlmGateway({
      primary: {
        provider,
        quota: createQuotaGovernor({
          redis,
          prefix: `${prefix}probe:`,
          provider: 'groq',
          limits: UNLIMITED,
          callTimeoutMs: 10_000,
          metrics,
          logger,
          tracker: createDegradationTracker('quota-groq', logger, metrics),
        }),
        breaker: createProviderBreaker({ provider: 'groq', failureThreshold: 1, cooldownMs: 1000, metrics, logger }),
      },
      retry: { maxAttempts: 1, budgetMs: 5000, baseDelayMs: 50, maxDelayMs: 400 },
      defaultQuotaWaitMs: 0,
      metrics,
      logger,
    });
    const ask = () => gateway.complete({ messages: [{ role: 'user', content: 'hi' }], maxTokens: 10, temperature: 0 });

    await expect(ask()).rejects.toMatchObject({ kind: 'unavailable', status: 500 });
    await expect(ask()).rejects.toMatchObject({ kind: 'unavailable', message: 'circuit open' });
    expect(calls).toBe(1);

    await pause(1100);
    healthy = true;
    const outcomes = await Promise.allSettled(Array.from({ length: 5 }, ask));
    expect(calls).toBe(2);
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
    for (const outcome of outcomes.filter((each) => each.status === 'rejected')) {
      expect(outcome.reason).toMatchObject({ kind: 'unavailable', message: 'circuit open' });
    }
    expect(gateway.status().upstream.groq?.circuit).toBe('closed');
  });
});
