import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/config.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { createLogger } from '../../src/telemetry/logger.js';

/** Lines a test backend logged, parsed, so tests can assert on them. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: string, callback: () => void) {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    callback();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export interface TestBackend {
  runtime: Runtime;
  url: string;
  prefix: string;
  logs: LogCapture;
  close(): Promise<void>;
}

/** A random key prefix, so test files can share one Redis and run in parallel. */
export function testPrefix(name: string): string {
  return `test:${name}:${randomUUID().slice(0, 8)}:`;
}

/**
 * One backend in-process, listening on a free loopback port, configured like
 * production from an environment (defaults + overrides). Pass the same
 * REDIS_PREFIX to several to make a cluster.
 */
export async function startTestBackend(env: Record<string, string> = {}): Promise<TestBackend> {
  const prefix = env.REDIS_PREFIX ?? testPrefix('backend');
  const config = loadConfig({
    PORT: '0',
    LOG_LEVEL: 'info',
    SHUTDOWN_DRAIN_MS: '0',
    // Shared by test files that do not look at accounts; those that do pass a database of their own.
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/focus_test',
    ...env,
    REDIS_PREFIX: prefix,
    INSTANCE_ID: env.INSTANCE_ID ?? `test-${randomUUID().slice(0, 6)}`,
  });
  const logs = new LogCapture();
  const logger = createLogger({ level: config.LOG_LEVEL, instanceId: config.INSTANCE_ID }, logs);
  const runtime = await createRuntime(config, logger);
  const { url } = await runtime.listen();
  return {
    runtime,
    url,
    prefix,
    logs,
    close: () => runtime.shutdown(),
  };
}

/** Deletes every key under a prefix (cleanup after a test file), through a runtime's or any Redis client. */
export async function deletePrefix(target: Pick<Runtime, 'redis'>, prefix: string): Promise<void> {
  const stream = target.redis.scanStream({ match: `${prefix}*`, count: 500 });
  for await (const keys of stream as AsyncIterable<string[]>) {
    if (keys.length > 0) {
      await target.redis.del(...keys);
    }
  }
}

/**
 * Deletes a prefix on the shared Redis through a client of its own. Call it after
 * the backends are closed: they flush buffered writes (cluster stats) as they stop.
 */
export async function deleteTestPrefix(prefix: string, redisUrl = 'redis://127.0.0.1:6379'): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    await deletePrefix({ redis }, prefix);
  } finally {
    await redis.quit();
  }
}
