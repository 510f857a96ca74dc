import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { RedisOpener } from '../redis/redis-client.js';
import { createDegradationTracker } from '../telemetry/degradation.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { createGroqProvider } from './groq-provider.js';
import { createLlmGateway, type GatewayRoute, type LlmGateway } from './llm-gateway.js';
import type { OpenAiCompatibleProviderOptions } from './openai-compatible-provider.js';
import { createProviderBreaker } from './provider-breaker.js';
import { createQuotaGovernor, type QuotaLimits } from './quota-governor.js';
import { createRedisCoalescer, type RequestCoalescer } from './request-coalescer.js';
import type { LlmProvider } from './types.js';

export interface UpstreamOptions {
  config: Config;
  redis: Redis;
  /** Opens the coalescing subscriber's connection (the same Redis as `redis`). */
  openRedis: RedisOpener;
  /** Where Groq answers (the configured URL or the embedded simulator's). */
  groqBaseUrl: string;
  metrics: Metrics;
  logger: Logger;
  /** Decorates each provider (e.g. usage accounting); identity by default. */
  wrapProvider?: (provider: LlmProvider) => LlmProvider;
  /** The in-process clock of the quotas and the gateway; Date.now by default. */
  now?: () => number;
}

export interface Upstream {
  gateway: LlmGateway;
  coalescer: RequestCoalescer;
  /** Circuit state per provider, for /readyz. */
  readinessDetail(): Record<string, unknown>;
  close(): void;
}

/** Builds the upstream side of one process: providers, their quotas and breakers, the gateway, the coalescer. */
export function createUpstream(options: UpstreamOptions): Upstream {
  const { config, redis, metrics, logger } = options;
  const gateway = createLlmGateway({
    primary: primaryRoute(options),
    fallback: fallbackRoute(options),
    retry: {
      maxAttempts: config.UPSTREAM_MAX_ATTEMPTS,
      budgetMs: config.UPSTREAM_RETRY_BUDGET_MS,
      baseDelayMs: config.UPSTREAM_RETRY_BASE_MS,
      maxDelayMs: 8 * config.UPSTREAM_RETRY_BASE_MS,
    },
    defaultQuotaWaitMs: config.QUOTA_MAX_WAIT_MS,
    metrics,
    logger,
    now: options.now,
  });

  // Subscribed connections wait for Redis (offline queue) and resubscribe after a reconnect.
  const subscriber = options.openRedis('coalesce', 'queue');
  const coalescer = createRedisCoalescer({
    redis,
    subscriber,
    prefix: config.REDIS_PREFIX,
    waitMs: config.COALESCE_WAIT_MS,
    metrics,
    logger,
    tracker: createDegradationTracker('coalescer', logger, metrics),
  });

  return {
    gateway,
    coalescer,
    readinessDetail: () => gateway.status(),
    close() {
      coalescer.close();
      // Nothing to flush on a subscriber, and QUIT would wait for ever while Redis is down.
      subscriber.disconnect();
    },
  };
}

function primaryRoute(options: UpstreamOptions): GatewayRoute {
  const { config } = options;
  const provider = createGroqProvider({
    apiKey: config.GROQ_API_KEY ?? 'simulator',
    baseURL: options.groqBaseUrl,
    model: config.GROQ_MODEL,
    timeoutMs: config.GROQ_TIMEOUT_MS,
  });
  const limits = {
    requestsPerMinute: config.GROQ_RPM,
    tokensPerMinute: config.GROQ_TPM,
    requestsPerDay: config.GROQ_RPD,
    tokensPerDay: config.GROQ_TPD,
  };
  return route(options, provider, limits, config.GROQ_TIMEOUT_MS);
}

/** The OpenAI-compatible fallback, when one is configured. */
function fallbackRoute(options: UpstreamOptions): GatewayRoute | undefined {
  const { config } = options;
  if (!config.FALLBACK_BASE_URL || !config.FALLBACK_MODEL) {
    return undefined;
  }
  const provider = openAiCompatibleProvider({
    name: 'fallback',
    apiKey: config.FALLBACK_API_KEY ?? 'none',
    baseURL: config.FALLBACK_BASE_URL,
    model: config.FALLBACK_MODEL,
    timeoutMs: config.FALLBACK_TIMEOUT_MS,
  });
  const limits = {
    requestsPerMinute: config.FALLBACK_RPM,
    tokensPerMinute: config.FALLBACK_TPM,
    requestsPerDay: config.FALLBACK_RPD,
    tokensPerDay: config.FALLBACK_TPD,
  };
  return route(options, provider, limits, config.FALLBACK_TIMEOUT_MS);
}

/**
 * The openai SDK is imported only when a fallback is configured: an instance
 * without one never carries it (about 2 MB of heap). The import starts at once,
 * so the first fallback call does not wait for it.
 */
function openAiCompatibleProvider(settings: OpenAiCompatibleProviderOptions): LlmProvider {
  const loaded = import('./openai-compatible-provider.js').then((module) =>
    module.createOpenAiCompatibleProvider(settings),
  );
  // A failed import surfaces on the first call, not as an unhandled rejection at start.
  loaded.catch(() => undefined);
  return {
    name: settings.name,
    model: settings.model,
    complete: async (request) => (await loaded).complete(request),
  };
}

/** One provider (decorated by wrapProvider) with its shared quota and its own breaker. */
function route(options: UpstreamOptions, provider: LlmProvider, limits: QuotaLimits, timeoutMs: number): GatewayRoute {
  const { config, metrics, logger } = options;
  const wrapped = options.wrapProvider ? options.wrapProvider(provider) : provider;
  return {
    provider: wrapped,
    quota: createQuotaGovernor({
      redis: options.redis,
      prefix: config.REDIS_PREFIX,
      provider: wrapped.name,
      limits,
      callTimeoutMs: timeoutMs,
      windowMs: config.QUOTA_WINDOW_MS,
      now: options.now,
      metrics,
      logger,
      tracker: createDegradationTracker(`quota-${wrapped.name}`, logger, metrics),
    }),
    breaker: createProviderBreaker({
      provider: wrapped.name,
      failureThreshold: config.BREAKER_FAILURE_THRESHOLD,
      cooldownMs: config.BREAKER_COOLDOWN_MS,
      metrics,
      logger,
    }),
  };
}
