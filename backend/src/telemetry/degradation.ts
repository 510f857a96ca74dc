import { createOutageReporter } from '../shared/outage.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/**
 * Tracks whether a component's dependency is failing, so an outage is logged
 * once when it starts and once when it ends, not on every request; each
 * failure is still counted in metrics.
 */
export interface DegradationTracker {
  failed(error: unknown): void;
  succeeded(): void;
}

export function createDegradationTracker(
  component: string,
  logger: Logger,
  metrics: Metrics,
  dependency: 'redis' | 'postgres' = 'redis',
): DegradationTracker {
  const errors = dependency === 'redis' ? metrics.redisErrors : metrics.postgresErrors;
  const outage = createOutageReporter({
    started(error) {
      const message = error instanceof Error ? error.message : String(error);
      logger.warn({ component, dependency, err: { message } }, `${component}: ${dependency} failing, degrading`);
    },
    ended: () => logger.info({ component, dependency }, `${component}: ${dependency} back, recovered`),
  });
  return {
    failed(error: unknown) {
      errors.inc({ component });
      outage.failed(error);
    },
    succeeded: outage.succeeded,
  };
}
