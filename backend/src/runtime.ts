import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type Koa from 'koa';
import { type GroqSimulator, startGroqSimulator } from '../sim/groq-simulator.js';
import { createApp } from './app.js';
import { createRedisResponseCache } from './cache/response-cache.js';
import { createChatService } from './chat/chat-service.js';
import type { Config } from './config.js';
import type { AppState } from './http/app-state.js';
import { createUpstream } from './llm/upstream.js';
import { startQueueRuntime } from './queue/queue-runtime.js';
import { createRedisClient, waitForRedis } from './redis/redis-client.js';
import { registerActiveUsersGauge } from './telemetry/active-users-gauge.js';
import { createClusterStats } from './telemetry/cluster-stats.js';
import { createDegradationTracker } from './telemetry/degradation.js';
import type { Logger } from './telemetry/logger.js';
import { createMetrics, type Metrics } from './telemetry/metrics.js';
import { withUpstreamUsage } from './telemetry/upstream-usage.js';

/**
 * The composition root: builds every dependency of one backend process from
 * its config, wires them together and owns their ordered shutdown. main.ts
 * runs it for real; tests run it in-process on their own Redis prefix.
 */
export interface Runtime {
  readonly app: Koa<AppState>;
  readonly server: Server;
  readonly redis: Redis;
  readonly metrics: Metrics;
  readonly lifecycle: { draining: boolean };
  /** The bundled simulator, when no GROQ_BASE_URL/GROQ_API_KEY was given. */
  readonly simulator: GroqSimulator | undefined;
  listen(): Promise<{ port: number; url: string }>;
  /** Not-ready, drain delay, stop accepting, finish in-flight work, close connections. */
  shutdown(): Promise<void>;
}

export async function createRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const metrics = createMetrics();
  const redis = createRedisClient({
    url: config.REDIS_URL,
    connectionName: `focus:${config.INSTANCE_ID}:api`,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    logger,
  });
  if (!(await waitForRedis(redis, 3000))) {
    logger.warn('redis not reachable at start; serving degraded until it is');
  }
  const clusterStats = createClusterStats({
    redis,
    prefix: config.REDIS_PREFIX,
    activeUserWindowSeconds: config.ACTIVE_USER_WINDOW_SECONDS,
    tracker: createDegradationTracker('cluster-stats', logger, metrics),
  });
  registerActiveUsersGauge({
    registry: metrics.registry,
    count: () => clusterStats.activeUsers(),
    timeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
  });

  let groqBaseUrl = config.GROQ_BASE_URL;
  let simulator: GroqSimulator | undefined;
  if (groqBaseUrl === undefined) {
    if (!config.ALLOW_EMBEDDED_SIMULATOR) {
      throw new Error('GROQ_BASE_URL: required when GROQ_API_KEY is unset and ALLOW_EMBEDDED_SIMULATOR=false');
    }
    simulator = await startGroqSimulator({}, { port: config.SIMULATOR_PORT });
    groqBaseUrl = simulator.url;
    logger.warn({ simulator: simulator.url }, 'GROQ_API_KEY is not set: answering from the bundled Groq simulator');
  }

  const upstream = createUpstream({
    config,
    redis,
    groqBaseUrl,
    metrics,
    logger,
    wrapProvider: (provider) => withUpstreamUsage(provider, clusterStats),
  });

  // One chat service for POST /api/chat and the queue worker alike.
  const chat = createChatService({
    cache: createRedisResponseCache({
      redis,
      prefix: config.REDIS_PREFIX,
      ttlSeconds: config.CACHE_TTL_SECONDS,
      metrics,
      tracker: createDegradationTracker('response-cache', logger, metrics),
    }),
    gateway: upstream.gateway,
    coalescer: upstream.coalescer,
    maxTokens: config.GROQ_MAX_TOKENS,
    temperature: config.GROQ_TEMPERATURE,
  });
  const queue = startQueueRuntime({ config, redis, chat, metrics, logger });

  const lifecycle = { draining: false };
  const app = createApp({
    config,
    redis,
    logger,
    metrics,
    chat,
    queue: queue.chatQueue,
    lifecycle,
    clusterStats,
    readinessDetail: upstream.readinessDetail,
    upstreamQuota: {
      provider: upstream.gateway.target.provider,
      requestsPerMinute: config.GROQ_RPM,
      tokensPerMinute: config.GROQ_TPM,
    },
    queueStats: queue.chatQueue,
  });
  const server = createServer(app.callback());
  // Longer than the proxy's idle timeout, so the proxy closes idle connections first.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  let stopping: Promise<void> | undefined;
  async function stop() {
    lifecycle.draining = true;
    logger.info('draining');
    await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_DRAIN_MS));
    if (server.listening) {
      await new Promise<void>((resolve) => {
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
    await queue.close();
    upstream.close();
    await clusterStats.flush();
    await redis.quit().catch(() => redis.disconnect());
    await simulator?.close();
    logger.info('stopped');
  }

  return {
    app,
    server,
    redis,
    metrics,
    lifecycle,
    simulator,
    async listen() {
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
    },
    shutdown() {
      stopping ??= stop();
      return stopping;
    },
  };
}
