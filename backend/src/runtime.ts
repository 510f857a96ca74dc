import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type Koa from 'koa';
import type { GroqSimulator } from '../sim/groq-simulator.js';
import { createAccountService, type UserDataHolder, type UserRef, userRef } from './account/account-service.js';
import { createApp } from './app.js';
import { type Authenticator, createAuthenticator } from './auth/authenticator.js';
import { createDeviceTokens, type DeviceTokens } from './auth/device-tokens.js';
import { signingSecret } from './auth/signing-secret.js';
import { createRedisResponseCache, type ResponseCache } from './cache/response-cache.js';
import { type ChatService, createChatService } from './chat/chat-service.js';
import type { Config } from './config.js';
import { createDatabase, type Database } from './db/database.js';
import { type Migrations, startMigrations } from './db/migrations.js';
import { createUserStore, type UserStore } from './db/user-store.js';
import type { AppState } from './http/app-state.js';
import { type CallerRateLimit, rateLimit } from './http/rate-limit.js';
import { createGroqProvider } from './llm/groq-provider.js';
import { createUpstream, type Upstream } from './llm/upstream.js';
import { withUpstreamUsage } from './llm/upstream-usage.js';
import { type QueueRuntime, startQueueRuntime } from './queue/queue-runtime.js';
import { type CallerKeys, callerKeys as createCallerKeys } from './redis/caller-key.js';
import { createRedisClient, type RedisOpener, waitForRedis } from './redis/redis-client.js';
import { watchRedisDurability } from './redis/redis-durability.js';
import { describeRedisTarget, redisTarget } from './redis/redis-target.js';
import type { Usage } from './routes/account-routes.js';
import { createModerationModel, createSafetyCheck, LANGUAGES, type SafetyCheck } from './safety/index.js';
import { sleep } from './shared/sleep.js';
import { registerActiveUsersGauge } from './telemetry/active-users-gauge.js';
import { type ClusterStats, createClusterStats } from './telemetry/cluster-stats.js';
import { createDegradationTracker, type DegradationTracker } from './telemetry/degradation.js';
import { createErrorTracker, type ErrorTracker } from './telemetry/error-tracking.js';
import type { Logger } from './telemetry/logger.js';
import { createMetrics, type Metrics } from './telemetry/metrics.js';
import { createTokenBudget, type TokenBudget } from './usage/token-budget.js';

/**
 * The composition root: builds every dependency of one backend process from
 * its config, wires them together and owns their ordered shutdown. main.ts
 * runs it for real; tests run it in-process on their own Redis prefix.
 */
export interface Runtime {
  readonly app: Koa<AppState>;
  readonly server: Server;
  readonly redis: Redis;
  /** How this process names callers in Redis (tests look their keys up with it). */
  readonly callerKeys: CallerKeys;
  readonly metrics: Metrics;
  readonly lifecycle: { draining: boolean };
  /** The bundled simulator, when no GROQ_BASE_URL/GROQ_API_KEY was given. */
  readonly simulator: GroqSimulator | undefined;
  listen(): Promise<{ port: number; url: string }>;
  /** Not-ready, drain delay, stop accepting, finish in-flight work, close connections. */
  shutdown(): Promise<void>;
}

/**
 * Without LOG_CALLER_SALT, callers are named in Redis under this built-in key:
 * every instance still agrees (a job posted on one is polled on another), but
 * whoever reads this code can reverse an IPv4 address's name; production sets
 * the salt (the Kubernetes base requires it).
 */
const BUILT_IN_CALLER_KEY = 'focus-backend: LOG_CALLER_SALT unset';

/** What every step of the composition shares: config, logs, metrics, Redis and where Groq answers. */
interface Base {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  callerKeys: CallerKeys;
  /** The request path's connection. */
  redis: Redis;
  /** Every further connection (the worker's, the coalescing subscriber), to the same target (Sentinel, password, TLS). */
  openRedis: RedisOpener;
  clusterStats: ClusterStats;
  /** Where Groq answers: the configured URL or the embedded simulator's. */
  groqBaseUrl: string;
  simulator: GroqSimulator | undefined;
}

/** Accounts and tokens: PostgreSQL and what signs and checks tokens. */
interface Identity {
  database: Database;
  migrations: Migrations;
  users: UserStore;
  deviceTokens: DeviceTokens;
  authenticator: Authenticator;
  postgresTracker: DegradationTracker;
}

/** Per-caller limits: the daily token budget and the chat rate limit. */
interface Limits {
  budget: TokenBudget;
  chatRateLimit: CallerRateLimit;
}

/** What answers a question: the upstream, the cache, the chat service, the queue and the safety check. */
interface Answering {
  upstream: Upstream;
  cache: ResponseCache;
  chat: ChatService;
  queue: QueueRuntime;
  safety: SafetyCheck;
}

export async function createRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const base = await connectBase(config, logger);
  const identity = await openIdentity(base);
  const limits = createLimits(base);
  const answering = createAnswering(base, limits);
  const usage = usageReader(limits);
  const accounts = createAccountService({
    users: identity.users,
    deviceTokens: identity.deviceTokens,
    authenticator: identity.authenticator,
    holders: userDataHolders(base, limits, answering, usage),
    tracker: identity.postgresTracker,
    callerKeys: base.callerKeys,
  });
  const errorTracker = await createErrorTracker({
    dsn: config.SENTRY_DSN,
    instanceId: config.INSTANCE_ID,
    environment: config.NODE_ENV,
    logger,
  });
  const lifecycle = { draining: false };
  const app = createApp({
    config,
    errorTracker,
    authenticator: identity.authenticator,
    accounts,
    chatRateLimit: limits.chatRateLimit,
    usage: (userId) => usage(userRef(base.callerKeys, userId)),
    redis: base.redis,
    callerKeys: base.callerKeys,
    logger,
    metrics: base.metrics,
    chat: answering.chat,
    queue: answering.queue.chatQueue,
    safety: answering.safety,
    lifecycle,
    clusterStats: base.clusterStats,
    readinessDetail: answering.upstream.readinessDetail,
    upstreamQuota: {
      provider: answering.upstream.gateway.target.provider,
      requestsPerMinute: config.GROQ_RPM,
      tokensPerMinute: config.GROQ_TPM,
    },
    queueStats: answering.queue.chatQueue,
  });
  const server = createHttpServer(config, app);
  const stop = () => stopInOrder({ base, identity, answering, errorTracker, lifecycle, server });
  return runtimeHandle(base, { app, server, lifecycle, stop });
}

/** Metrics, the caller keys, the Redis connection and cluster stats, and the Groq URL (or the embedded simulator). */
async function connectBase(config: Config, logger: Logger): Promise<Base> {
  const metrics = createMetrics();
  const callerKeys = createCallerKeys(config.LOG_CALLER_SALT ?? BUILT_IN_CALLER_KEY);
  if (config.LOG_CALLER_SALT === undefined) {
    logger.warn('LOG_CALLER_SALT is not set: callers are named in Redis under a built-in key; set it in production');
  }
  const target = redisTarget(config);
  const openRedis: RedisOpener = (name, role) =>
    createRedisClient({
      target,
      connectionName: `focus:${config.INSTANCE_ID}:${name}`,
      commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
      logger,
      role,
    });
  const redis = openRedis('api', 'request-path');
  watchRedisDurability(redis, logger);
  if (!(await waitForRedis(redis, 3000))) {
    logger.warn({ redis: describeRedisTarget(target) }, 'redis not reachable at start; serving degraded until it is');
  }
  const clusterStats = createClusterStats({
    redis,
    prefix: config.REDIS_PREFIX,
    activeUserWindowSeconds: config.ACTIVE_USER_WINDOW_SECONDS,
    tracker: createDegradationTracker('cluster-stats', logger, metrics),
    callerKeys,
  });
  registerActiveUsersGauge({
    registry: metrics.registry,
    count: () => clusterStats.activeUsers(),
    timeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
  });
  const groq = await groqEndpoint(config, logger);
  return { config, logger, metrics, callerKeys, redis, openRedis, clusterStats, ...groq };
}

async function groqEndpoint(
  config: Config,
  logger: Logger,
): Promise<{ groqBaseUrl: string; simulator: GroqSimulator | undefined }> {
  if (config.GROQ_BASE_URL !== undefined) {
    return { groqBaseUrl: config.GROQ_BASE_URL, simulator: undefined };
  }
  if (!config.ALLOW_EMBEDDED_SIMULATOR) {
    throw new Error('GROQ_BASE_URL: required when GROQ_API_KEY is unset and ALLOW_EMBEDDED_SIMULATOR=false');
  }
  // Loaded only here: production, with a key, never carries the simulator's code in memory.
  const { startGroqSimulator } = await import('../sim/groq-simulator.js');
  const simulator = await startGroqSimulator({}, { port: config.SIMULATOR_PORT });
  logger.warn({ simulator: simulator.url }, 'GROQ_API_KEY is not set: answering from the bundled Groq simulator');
  return { groqBaseUrl: simulator.url, simulator };
}

async function openIdentity(base: Base): Promise<Identity> {
  const { config, logger, metrics } = base;
  const database = createDatabase({
    url: config.DATABASE_URL,
    poolMax: config.DATABASE_POOL_MAX,
    timeoutMs: config.DATABASE_TIMEOUT_MS,
    logger,
  });
  const postgresTracker = createDegradationTracker('accounts', logger, metrics, 'postgres');
  const migrations = startMigrations({ config, logger, tracker: postgresTracker });
  // Bounded: with PostgreSQL down the instance still starts (and retries), as signed-in chat needs no database.
  await Promise.race([migrations.done, delay(config.DATABASE_TIMEOUT_MS * 2, undefined, { ref: false })]);
  const users = createUserStore(database);
  const deviceTokens = createDeviceTokens({
    secret: signingSecret({ configured: config.AUTH_JWT_SECRET, users, tracker: postgresTracker }),
    ttlSeconds: config.AUTH_TOKEN_TTL_SECONDS,
  });
  const authenticator = createAuthenticator({
    deviceTokens,
    external:
      config.AUTH_JWKS_URL && config.AUTH_ISSUER && config.AUTH_AUDIENCE
        ? { jwksUrl: config.AUTH_JWKS_URL, issuer: config.AUTH_ISSUER, audience: config.AUTH_AUDIENCE }
        : undefined,
    users,
    redis: base.redis,
    prefix: config.REDIS_PREFIX,
    redisTracker: createDegradationTracker('auth', logger, metrics),
    postgresTracker,
    callerKeys: base.callerKeys,
  });
  return { database, migrations, users, deviceTokens, authenticator, postgresTracker };
}

function createLimits(base: Base): Limits {
  const { config, logger, metrics, redis } = base;
  const budget = createTokenBudget({
    redis,
    prefix: config.REDIS_PREFIX,
    tokensPerDay: config.USER_TOKENS_PER_DAY,
    maxConcurrent: config.USER_MAX_CONCURRENT,
    tracker: createDegradationTracker('budget', logger, metrics),
    metrics,
  });
  const chatRateLimit = rateLimit({
    redis,
    prefix: config.REDIS_PREFIX,
    pointsPerMinute: { ip: config.MAX_REQUESTS_PER_MINUTE, user: config.USER_REQUESTS_PER_MINUTE },
    metrics,
    tracker: createDegradationTracker('rate-limit', logger, metrics),
    callerKeys: base.callerKeys,
  });
  return { budget, chatRateLimit };
}

function createAnswering(base: Base, limits: Limits): Answering {
  const { config, logger, metrics, redis } = base;
  const upstream = createUpstream({
    config,
    redis,
    openRedis: base.openRedis,
    groqBaseUrl: base.groqBaseUrl,
    metrics,
    logger,
    wrapProvider: (provider) => withUpstreamUsage(provider, base.clusterStats),
    // The clock of the quotas' and the gateway's decisions (the quota window itself runs on Redis TIME).
    now: Date.now,
  });
  const cache = createRedisResponseCache({
    redis,
    prefix: config.REDIS_PREFIX,
    ttlSeconds: config.CACHE_TTL_SECONDS,
    metrics,
    stats: base.clusterStats,
    tracker: createDegradationTracker('response-cache', logger, metrics),
  });
  // One chat service for POST /api/chat and the queue worker alike.
  const chat = createChatService({
    cache,
    budget: limits.budget,
    gateway: upstream.gateway,
    coalescer: upstream.coalescer,
    maxTokens: config.GROQ_MAX_TOKENS,
    temperature: config.GROQ_TEMPERATURE,
  });
  const queue = startQueueRuntime({
    config,
    redis,
    openRedis: base.openRedis,
    chat,
    metrics,
    logger,
    callerKeys: base.callerKeys,
  });
  return { upstream, cache, chat, queue, safety: createSafety(base) };
}

/** The rules always; SAFETY_MODEL as a second opinion through the Groq adapter, outside the quota (SAFETY.md). */
function createSafety(base: Base): SafetyCheck {
  const { config } = base;
  return createSafetyCheck({
    languages: LANGUAGES,
    historyTurns: config.SAFETY_HISTORY_TURNS,
    metrics: base.metrics,
    model: config.SAFETY_MODEL
      ? createModerationModel({
          provider: createGroqProvider({
            name: 'safety',
            apiKey: config.GROQ_API_KEY ?? 'simulator',
            baseURL: base.groqBaseUrl,
            model: config.SAFETY_MODEL,
            timeoutMs: config.SAFETY_MODEL_TIMEOUT_MS,
          }),
          timeoutMs: config.SAFETY_MODEL_TIMEOUT_MS,
        })
      : undefined,
  });
}

type UsageReader = (user: UserRef) => Promise<Usage>;

/** A user's use today and this minute (GET /api/me and the export). */
function usageReader(limits: Limits): UsageReader {
  return async (user) => {
    const [tokens, requestsThisMinute] = await Promise.all([
      limits.budget.usage(user.caller.key),
      limits.chatRateLimit.used({ kind: 'user', id: user.callerId }),
    ]);
    return { tokensToday: tokens.tokensToday ?? 0, budget: tokens.budget, requestsThisMinute };
  };
}

/** Everything kept about a user, outside their account row: exported by GET /api/me/export, deleted with them. */
function userDataHolders(base: Base, limits: Limits, answering: Answering, usage: UsageReader): UserDataHolder[] {
  const { chatQueue } = answering.queue;
  return [
    {
      name: 'usage',
      export: usage,
      async forget(user) {
        await limits.budget.forget(user.caller.key);
        await limits.chatRateLimit.forget({ kind: 'user', id: user.callerId });
        await base.clusterStats.forgetCaller(user.callerId);
      },
    },
    {
      name: 'queuedJobs',
      export: (user) => chatQueue.owned(user.callerId),
      forget: (user) => chatQueue.forget(user.callerId),
    },
    {
      name: 'cachedAnswers',
      export: (user) => answering.cache.owned(user.caller.key),
      forget: (user) => answering.cache.forgetOwner(user.caller.key),
    },
  ];
}

function createHttpServer(config: Config, app: Koa<AppState>): Server {
  const server = createServer(
    {
      // A client that trickles its headers or body is cut: Node's default would hold it 300 s.
      // Only receiving the request is bounded; a long answer (a stream) is not.
      headersTimeout: config.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
      // Node checks those timeouts on this period (30 s by default, which would blur them).
      connectionsCheckingInterval: Math.min(1000, config.HTTP_HEADERS_TIMEOUT_MS),
    },
    app.callback(),
  );
  // Longer than the proxy's idle timeout, so the proxy closes idle connections first.
  server.keepAliveTimeout = config.HTTP_KEEP_ALIVE_TIMEOUT_MS;
  return server;
}

/** Not-ready, drain delay, stop accepting, then close every part, the HTTP side first and Redis last. */
async function stopInOrder(parts: {
  base: Base;
  identity: Identity;
  answering: Answering;
  errorTracker: ErrorTracker;
  lifecycle: { draining: boolean };
  server: Server;
}): Promise<void> {
  const { base, identity, answering, server } = parts;
  const { logger, redis } = base;
  parts.lifecycle.draining = true;
  logger.info('draining');
  await sleep(base.config.SHUTDOWN_DRAIN_MS);
  if (server.listening) {
    await closeServer(server);
  }
  await answering.queue.close();
  answering.upstream.close();
  await base.clusterStats.flush();
  identity.migrations.stop();
  await parts.errorTracker.close();
  await identity.database.end().catch(() => undefined);
  await redis.quit().catch(() => redis.disconnect());
  await base.simulator?.close();
  logger.info('stopped');
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    // close() ends idle keep-alive connections only once: a connection whose
    // in-flight request finishes later (a proxy always keeps one) would hold
    // the shutdown until the client drops it, so sweep until the server closes.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    server.close(() => {
      clearInterval(sweep);
      resolve();
    });
    server.closeIdleConnections();
  });
}

function runtimeHandle(
  base: Base,
  parts: { app: Koa<AppState>; server: Server; lifecycle: { draining: boolean }; stop: () => Promise<void> },
): Runtime {
  const { server } = parts;
  let stopping: Promise<void> | undefined;
  return {
    app: parts.app,
    server,
    redis: base.redis,
    callerKeys: base.callerKeys,
    metrics: base.metrics,
    lifecycle: parts.lifecycle,
    simulator: base.simulator,
    listen: () => listen(base, server),
    shutdown() {
      stopping ??= parts.stop();
      return stopping;
    },
  };
}

async function listen(base: Base, server: Server): Promise<{ port: number; url: string }> {
  const { config, logger } = base;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // An inherited listening socket (LISTEN_FD) outlives this process: the local
    // runner keeps it, so after a crash connections queue for the replacement
    // instead of being refused.
    const address =
      config.LISTEN_FD === undefined ? { port: config.PORT, host: config.HOST } : { fd: config.LISTEN_FD };
    server.listen(address, () => {
      // Only a failure to listen rejects; later server errors must not vanish into it.
      server.off('error', reject);
      server.on('error', (error) => logger.error({ err: error }, 'http server error'));
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  logger.info({ port, host: config.HOST }, 'listening');
  return { port, url: `http://127.0.0.1:${port}` };
}
