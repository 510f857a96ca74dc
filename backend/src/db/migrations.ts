import type { Config } from '../config.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { Logger } from '../telemetry/logger.js';
import { migrate } from './database.js';

const RETRY_MS = 5000;

export interface Migrations {
  /** Resolves once the schema is current (never rejects: failures are retried). */
  readonly done: Promise<void>;
  stop(): void;
}

/**
 * Applies the migrations at start. PostgreSQL being down must not stop an
 * instance (signed-in chat needs no database), so a failure is logged once
 * and retried in the background; until it succeeds, sign-up and /api/me
 * answer 503.
 */
export function startMigrations(options: { config: Config; logger: Logger; tracker: DegradationTracker }): Migrations {
  const { config, logger, tracker } = options;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const done = new Promise<void>((resolve) => {
    const attempt = () => {
      migrate({ url: config.DATABASE_URL, timeoutMs: config.DATABASE_TIMEOUT_MS, logger }).then(
        (applied) => {
          tracker.succeeded();
          if (applied.length > 0) {
            logger.info({ applied }, 'database migrated');
          }
          resolve();
        },
        (error: unknown) => {
          tracker.failed(error);
          if (!stopped) {
            timer = setTimeout(attempt, RETRY_MS);
            timer.unref();
          }
        },
      );
    };
    attempt();
  });
  return {
    done,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
