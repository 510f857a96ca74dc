import { Gauge, type Registry } from 'prom-client';
import { withTimeout } from '../shared/with-timeout.js';

export interface ActiveUsersGaugeOptions {
  registry: Registry;
  /** The cluster-wide count (Redis). */
  count(): Promise<number>;
  /** A scrape must not hang on Redis: past this, the sample is NaN. */
  timeoutMs: number;
}

/**
 * focus_active_users: read from Redis when Prometheus scrapes, so every
 * instance reports the same cluster-wide value (aggregate with max, not sum).
 * When Redis cannot answer the sample is NaN ("unknown"), not a false 0; the
 * failure itself is counted by the source.
 */
export function registerActiveUsersGauge(options: ActiveUsersGaugeOptions): Gauge {
  const { count, timeoutMs } = options;
  return new Gauge({
    name: 'focus_active_users',
    help: 'Distinct callers seen across the cluster within the active-user window (same value on every instance).',
    registers: [options.registry],
    async collect() {
      try {
        this.set(await withTimeout(count(), timeoutMs));
      } catch {
        this.set(Number.NaN);
      }
    },
  });
}
