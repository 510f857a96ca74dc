import { randomBytes } from 'node:crypto';
import type Router from '@koa/router';
import type { Redis } from 'ioredis';
import Koa from 'koa';
import type { AccountService } from './account/account-service.js';
import type { Authenticator } from './auth/authenticator.js';
import { chatRequestSchema } from './chat/chat-request.js';
import type { ChatService } from './chat/chat-service.js';
import { gatewayRequestSchema } from './chat/openai-request.js';
import { type Config, parseTrustedProxies } from './config.js';
import type { AppMiddleware, AppState } from './http/app-state.js';
import { authenticate } from './http/authenticate.js';
import { clientIdentity } from './http/client-identity.js';
import { errorHandler } from './http/error-handler.js';
import { jsonBody } from './http/json-body.js';
import { type CallerRateLimit, localRateLimit, signupRateLimit } from './http/rate-limit.js';
import { recordClusterStats } from './http/record-cluster-stats.js';
import { requestContext, routeTemplate } from './http/request-context.js';
import { safetyGuard } from './http/safety-guard.js';
import { validateBody } from './http/validate.js';
import type { ChatQueue } from './queue/chat-queue.js';
import { type CallerKeys, callerKeys as createCallerKeys } from './redis/caller-key.js';
import { type AccountRoutesOptions, accountRoutes } from './routes/account-routes.js';
import { chatRoutes } from './routes/chat-routes.js';
import { healthRoutes, type Lifecycle } from './routes/health-routes.js';
import { metricsRoutes } from './routes/metrics-routes.js';
import { openAiRoutes } from './routes/openai-routes.js';
import { queueRoutes } from './routes/queue-routes.js';
import { type QueueStatsSource, statsRoutes } from './routes/stats-routes.js';
import { streamRoutes } from './routes/stream-routes.js';
import type { SafetyCheck } from './safety/index.js';
import type { ClusterStats } from './telemetry/cluster-stats.js';
import { createDegradationTracker } from './telemetry/degradation.js';
import type { ErrorTracker } from './telemetry/error-tracking.js';
import type { Logger } from './telemetry/logger.js';
import type { Metrics } from './telemetry/metrics.js';
import type { UpstreamQuota } from './telemetry/stats-report.js';

export interface AppDependencies {
  config: Config;
  /** Unexpected errors also go here (Sentry, when SENTRY_DSN is set). */
  errorTracker?: ErrorTracker;
  authenticator: Authenticator;
  accounts: AccountService;
  /** The per-caller chat limit (shared with account deletion and GET /api/me). */
  chatRateLimit: CallerRateLimit;
  usage: AccountRoutesOptions['usage'];
  redis: Redis;
  /** How callers are named in Redis (keyed with LOG_CALLER_SALT), the same for every part of the process. */
  callerKeys: CallerKeys;
  logger: Logger;
  metrics: Metrics;
  /** The chat service (cache, then the LLM), shared with the queue worker. */
  chat: ChatService;
  queue: ChatQueue;
  /** Crisis messages: every chat route asks it before the cache and the LLM (SAFETY.md). */
  safety: SafetyCheck;
  lifecycle: Lifecycle;
  clusterStats: ClusterStats;
  queueStats: QueueStatsSource;
  /** Extra /readyz detail: the upstream circuits' state. */
  readinessDetail?: () => Record<string, unknown>;
  /** The primary provider's per-minute budget, shown on /dashboard against its use. */
  upstreamQuota?: UpstreamQuota;
}

const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);

/** Conversations sent to the gateway are bounded by the body limit; this bounds their turns. */
const GATEWAY_MAX_MESSAGES = 200;

/** Composes the HTTP app; the middleware order below is the request path of DESIGN.md. */
export function createApp(deps: AppDependencies): Koa<AppState> {
  const app = new Koa<AppState>();
  app.on('error', logOutsideErrors(deps));
  const { config, logger, metrics, callerKeys } = deps;
  app.use(
    requestContext({
      instanceId: config.INSTANCE_ID,
      logger,
      metrics,
      // Under the salt, a log's tag is the caller's Redis name; without it, a key of this process only.
      callerTag: config.LOG_CALLER_SALT === undefined ? createCallerKeys(randomBytes(32)).hash : callerKeys.hash,
    }),
  );
  app.use(
    errorHandler({
      onUnexpected: (error, ctx) =>
        deps.errorTracker?.capture(error, { requestId: ctx.state.requestId, route: routeTemplate(ctx) }),
    }),
  );
  app.use(clientIdentity({ trustedProxies: parseTrustedProxies(config.TRUSTED_PROXIES) }));
  app.use(recordClusterStats({ stats: deps.clusterStats }));
  // A worker-only instance (ROLE=worker) serves health, metrics and stats, not the chat API.
  for (const router of [...operatorRoutes(deps), ...(config.ROLE === 'worker' ? [] : apiRoutes(deps))]) {
    app.use(router.routes());
    app.use(router.allowedMethods());
  }
  return app;
}

/**
 * What escapes the error middleware (a failure while writing a response, a bug in the outermost
 * middleware) is logged once, with the request id; a client that left is not an error of ours.
 */
function logOutsideErrors({ logger, errorTracker }: AppDependencies) {
  return function onAppError(error: NodeJS.ErrnoException, ctx?: Koa.Context): void {
    // Koa emits this outside the request's log context: the request id is passed by hand.
    const requestId = (ctx?.state as AppState | undefined)?.requestId;
    if (error.code !== undefined && CLIENT_GONE.has(error.code)) {
      logger.debug({ code: error.code, requestId }, 'client went away during the response');
      return;
    }
    logger.error({ err: error, requestId }, 'error outside the error handler');
    errorTracker?.capture(error, { requestId });
  };
}

/** Health, metrics and stats: served by every instance, whatever its role. */
function operatorRoutes(deps: AppDependencies): Router<AppState>[] {
  const { config } = deps;
  return [
    healthRoutes({ redis: deps.redis, lifecycle: deps.lifecycle, readinessDetail: deps.readinessDetail }),
    metricsRoutes({ metrics: deps.metrics }),
    statsRoutes({
      stats: deps.clusterStats,
      queue: deps.queueStats,
      quota: deps.upstreamQuota,
      instanceId: config.INSTANCE_ID,
      adminToken: config.ADMIN_TOKEN,
    }),
  ];
}

/** The chat API: the app's routes, the OpenAI-compatible gateway, the queue and accounts. */
function apiRoutes(deps: AppDependencies): Router<AppState>[] {
  const { config, chat, metrics, callerKeys } = deps;
  const authenticateCaller = authenticate({
    authenticator: deps.authenticator,
    required: config.AUTH_REQUIRED,
    metrics,
  });
  const body = jsonBody({ limitBytes: config.MAX_BODY_BYTES });
  const chatGuard = [
    authenticateCaller,
    deps.chatRateLimit.middleware,
    body,
    validateBody(
      chatRequestSchema({ maxMessageChars: config.MAX_MESSAGE_CHARS, maxHistoryMessages: config.MAX_HISTORY_MESSAGES }),
    ),
    safetyGuard({ safety: deps.safety }),
  ];
  return [
    chatRoutes({ chat, guard: chatGuard, callerKeys }),
    streamRoutes({ chat, guard: chatGuard, heartbeatMs: config.STREAM_HEARTBEAT_MS, metrics, callerKeys }),
    gatewayRoutes(deps, [authenticateCaller, deps.chatRateLimit.middleware], body),
    queueRoutes({
      queue: deps.queue,
      guard: chatGuard,
      pollGuard: [authenticateCaller, localRateLimit({ pointsPerMinute: config.POLLS_PER_MINUTE, metrics })],
    }),
    accountApi(deps),
  ];
}

function gatewayRoutes(deps: AppDependencies, guard: AppMiddleware[], body: AppMiddleware): Router<AppState> {
  const { config } = deps;
  return openAiRoutes({
    chat: deps.chat,
    guard,
    body,
    schema: gatewayRequestSchema({
      maxTokens: config.GATEWAY_MAX_TOKENS,
      maxMessages: GATEWAY_MAX_MESSAGES,
      maxMessageChars: config.MAX_BODY_BYTES,
    }),
    model: config.GROQ_MODEL,
    defaultMaxTokens: config.GATEWAY_MAX_TOKENS,
    // OpenAI's and Groq's own default when a caller does not say.
    defaultTemperature: 1,
    heartbeatMs: config.STREAM_HEARTBEAT_MS,
    metrics: deps.metrics,
    safety: config.SAFETY_ON_GATEWAY ? deps.safety : undefined,
    callerKeys: deps.callerKeys,
  });
}

function accountApi(deps: AppDependencies): Router<AppState> {
  const { config, metrics, logger } = deps;
  return accountRoutes({
    accounts: deps.accounts,
    authenticate: authenticate({ authenticator: deps.authenticator, required: true, metrics }),
    signupGuard: signupRateLimit({
      redis: deps.redis,
      prefix: config.REDIS_PREFIX,
      perHour: config.SIGNUPS_PER_IP_PER_HOUR,
      metrics,
      tracker: createDegradationTracker('signup-limit', logger, metrics),
      callerKeys: deps.callerKeys,
    }),
    usage: deps.usage,
  });
}
