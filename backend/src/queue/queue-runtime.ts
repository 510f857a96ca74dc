import type { Redis } from 'ioredis';
import type { ChatService } from '../chat/chat-service.js';
import type { Config } from '../config.js';
import type { CallerKeys } from '../redis/caller-key.js';
import type { RedisOpener } from '../redis/redis-client.js';
import { createReplicaAck } from '../redis/replica-ack.js';
import { createDegradationTracker } from '../telemetry/degradation.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { type ChatQueue, createChatQueue } from './chat-queue.js';
import { type ChatWorker, startChatWorker } from './chat-worker.js';
import { createJobLedger } from './job-ledger.js';
import { registerQueueDepthGauge } from './queue-depth-gauge.js';
import { type QueueKeys, queueKeys } from './queue-keys.js';

export interface QueueRuntimeOptions {
  config: Config;
  /** The request-path connection (fail fast), for POSTs and polls. */
  redis: Redis;
  /** Opens the worker's own connection (the same Redis as `redis`). */
  openRedis: RedisOpener;
  chat: Pick<ChatService, 'answer'>;
  metrics: Metrics;
  logger: Logger;
  callerKeys: CallerKeys;
}

export interface QueueRuntime {
  readonly chatQueue: ChatQueue;
  /** Undefined with ROLE=api. */
  readonly worker: ChatWorker | undefined;
  /** Worker first (finishes or hands back its jobs), then the queue, then the worker's connection. */
  close(): Promise<void>;
}

/** The chat queue of one instance: the producer always, the worker unless ROLE=api. */
export function startQueueRuntime(options: QueueRuntimeOptions): QueueRuntime {
  const keys = queueKeys(options.config.REDIS_PREFIX);
  const chatQueue = createProducer(options, keys);
  registerQueueDepthGauge({
    registry: options.metrics.registry,
    counts: () => chatQueue.counts(),
    timeoutMs: options.config.REDIS_COMMAND_TIMEOUT_MS,
  });
  const consumer = options.config.ROLE === 'api' ? undefined : startConsumer(options, keys, chatQueue);
  return {
    chatQueue,
    worker: consumer?.worker,
    async close() {
      await consumer?.worker.close();
      await chatQueue.close();
      if (consumer) {
        await closeConnection(consumer.connection);
      }
    },
  };
}

function createProducer(options: QueueRuntimeOptions, keys: QueueKeys): ChatQueue {
  const { config, redis, metrics, logger } = options;
  return createChatQueue({
    redis,
    redisPrefix: config.REDIS_PREFIX,
    keys,
    ledger: createJobLedger(redis, keys),
    attempts: config.QUEUE_ATTEMPTS,
    resultTtlSeconds: config.QUEUE_RESULT_TTL_SECONDS,
    maxWaiting: config.QUEUE_MAX_WAITING,
    idempotencyTtlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
    concurrency: config.QUEUE_CONCURRENCY,
    metrics,
    callerKeys: options.callerKeys,
    tracker: createDegradationTracker('queue', logger, metrics),
    replicaAck: createReplicaAck({
      redis,
      key: keys.line,
      replicas: config.REDIS_WAIT_REPLICAS,
      timeoutMs: config.REDIS_WAIT_TIMEOUT_MS,
      logger,
    }),
  });
}

function startConsumer(
  options: QueueRuntimeOptions,
  keys: QueueKeys,
  chatQueue: ChatQueue,
): { connection: Redis; worker: ChatWorker } {
  const { config, metrics, logger } = options;
  // Workers wait through Redis outages instead of failing jobs: their own connection, no command timeout.
  const connection = options.openRedis('queue', 'queue');
  const worker = startChatWorker({
    connection,
    redisPrefix: config.REDIS_PREFIX,
    queue: chatQueue.queue,
    chat: options.chat,
    ledger: createJobLedger(connection, keys),
    instanceId: config.INSTANCE_ID,
    concurrency: config.QUEUE_CONCURRENCY,
    backoffMs: config.QUEUE_BACKOFF_MS,
    resultTtlSeconds: config.QUEUE_RESULT_TTL_SECONDS,
    lockMs: config.QUEUE_LOCK_MS,
    shutdownGraceMs: config.QUEUE_SHUTDOWN_GRACE_MS,
    metrics,
    logger,
  });
  return { connection, worker };
}

async function closeConnection(connection: Redis): Promise<void> {
  // QUIT would wait for a reconnect while Redis is down.
  if (connection.status === 'ready') {
    await connection.quit().catch(() => connection.disconnect());
  } else {
    connection.disconnect();
  }
}
