import { randomUUID } from 'node:crypto';
import { startGroqSimulator } from '../../sim/groq-simulator.js';
import { SYSTEM_PROMPT } from '../../src/chat/system-prompt.js';
import { createGroqProvider } from '../../src/llm/groq-provider.js';
import { createLlmGateway, type GatewayRoute } from '../../src/llm/llm-gateway.js';
import { createProviderBreaker } from '../../src/llm/provider-breaker.js';
import {
  createQuotaGovernor,
  createUsageEstimator,
  estimateTokens,
  type UsageEstimator,
} from '../../src/llm/quota-governor.js';
import { createRedisClient } from '../../src/redis/redis-client.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { benchPrefix, deleteKeys, report, runScenario } from '../harness.js';

/**
 * How much of a binding upstream limit the quota governor spends: an upstream
 * that advertises Groq's free tier (30 RPM, 6,000 TPM) and always has more
 * demand than that (ASKERS callers asking new questions back to back, each
 * with the coach's system prompt), through the real gateway and governor on
 * Redis, for 60 s plus the window. Twice at once, on separate simulators and
 * prefixes: reserving the generous estimate (the answer's maximum), and the
 * learned estimate (the default). The figure is the accepted calls and their
 * tokens in the busiest 60 s, against both limits; the upstream's 429s must be 0.
 */
const SCENARIO = 'quota-fill';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SECONDS = Number(process.env.DURATION_S ?? 75);
const ASKERS = Number(process.env.ASKERS ?? 8);
const LIMITS = { requestsPerMinute: 30, tokensPerMinute: 6000, requestsPerDay: 0, tokensPerDay: 0 };
const MAX_TOKENS = 300;
const logger = createLogger({ level: 'silent', instanceId: 'bench' });

const generous: UsageEstimator = { estimate: estimateTokens, learn: () => undefined };

async function measure(name: string, estimator: UsageEstimator) {
  const simulator = await startGroqSimulator({ latencyMs: 300, rpm: 30, tpm: 6000, apiKey: 'bench-key' });
  const redis = createRedisClient({ url: REDIS_URL, connectionName: 'bench', commandTimeoutMs: 2000, logger });
  const metrics = createMetrics();
  const prefix = benchPrefix(SCENARIO);
  const route: GatewayRoute = {
    provider: createGroqProvider({
      apiKey: 'bench-key',
      baseURL: simulator.url,
      model: 'llama-3.1-8b-instant',
      timeoutMs: 10_000,
    }),
    quota: createQuotaGovernor({
      redis,
      prefix,
      provider: 'groq',
      limits: LIMITS,
      callTimeoutMs: 10_000,
      metrics,
      logger,
      tracker: createDegradationTracker('quota-groq', logger, metrics),
    }),
    breaker: createProviderBreaker({ provider: 'groq', failureThreshold: 5, cooldownMs: 5000, metrics, logger }),
    estimator,
  };
  const gateway = createLlmGateway({
    primary: route,
    retry: { maxAttempts: 1, budgetMs: 15_000, baseDelayMs: 250, maxDelayMs: 2000 },
    defaultQuotaWaitMs: 60_000,
    metrics,
    logger,
  });
  const started = Date.now();
  const end = started + SECONDS * 1000;
  let failures = 0;
  await Promise.all(
    Array.from({ length: ASKERS }, async () => {
      while (Date.now() < end) {
        await gateway
          .complete({
            messages: [
              { role: 'system', content: SYSTEM_PROMPT },
              { role: 'user', content: `I have three overdue tasks. Which first? (${randomUUID()})` },
            ],
            maxTokens: MAX_TOKENS,
            temperature: 0.7,
            maxQuotaWaitMs: Math.max(0, end - Date.now()),
          })
          .catch(async () => {
            // Refused: the quota had no room before the end of the run.
            failures += 1;
            await new Promise((resolve) => setTimeout(resolve, 100));
          });
      }
    }),
  );
  const calls = simulator.stats().calls.filter((call) => call.status === 200);
  // The busiest 60 s window (starting at any accepted call).
  let bestCalls = 0;
  let bestTokens = 0;
  for (const first of calls) {
    const inWindow = calls.filter((call) => call.at >= first.at && call.at < first.at + 60_000);
    bestCalls = Math.max(bestCalls, inWindow.length);
    bestTokens = Math.max(
      bestTokens,
      inWindow.reduce((sum, call) => sum + call.tokens, 0),
    );
  }
  const tokensPerCall = calls.length > 0 ? calls.reduce((sum, call) => sum + call.tokens, 0) / calls.length : 0;
  const stats = simulator.stats();
  await simulator.close();
  await deleteKeys(REDIS_URL, prefix);
  await redis.quit();
  return {
    estimate: name,
    reservedAfterTheRun: estimator.estimate(
      [{ content: SYSTEM_PROMPT }, { content: `I have three overdue tasks. Which first? (${randomUUID()})` }],
      MAX_TOKENS,
    ),
    tokensPerCall: Math.round(tokensPerCall),
    busiestMinuteCalls: bestCalls,
    busiestMinuteTokens: bestTokens,
    requestsShare: Math.round((bestCalls / LIMITS.requestsPerMinute) * 1000) / 1000,
    tokensShare: Math.round((bestTokens / LIMITS.tokensPerMinute) * 1000) / 1000,
    upstream429: stats.byStatus['429'] ?? 0,
    refusedAtTheEnd: failures,
  };
}

runScenario(async () => {
  const results = await Promise.all([
    measure('generous (answer maximum)', generous),
    measure('learned (default)', createUsageEstimator()),
  ]);
  for (const result of results) {
    report(SCENARIO, { ...result, limits: { rpm: LIMITS.requestsPerMinute, tpm: LIMITS.tokensPerMinute } });
  }
});
