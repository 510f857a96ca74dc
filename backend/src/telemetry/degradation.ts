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
  readonly degraded: boolean;
}

export function createDegradationTracker(component: string, logger: Logger, metrics: Metrics): DegradationTracker {
  let degraded = false;
  return {
    failed(error: unknown) {
      metrics.redisErrors.inc({ component });
      if (!degraded) {
        degraded = true;
        const message = error instanceof Error ? error.message : String(error);
        logger.warn({ component, err: { message } }, `${component}: redis failing, degrading`);
      }
    },
    succeeded() {
      if (degraded) {
        degraded = false;
        logger.info({ component }, `${component}: redis back, recovered`);
      }
    },
    get degraded() {
      return degraded;
    },
  };
}
