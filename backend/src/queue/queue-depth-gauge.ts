import { Gauge, type Registry } from 'prom-client';
import { withTimeout } from '../shared/with-timeout.js';

export interface QueueDepthGaugeOptions {
  registry: Registry;
  /** Cluster-wide counts from BullMQ. */
  counts(): Promise<{ waiting: number; active: number; delayed: number }>;
  /** A scrape must not hang on Redis: past this, the samples are NaN. */
  timeoutMs: number;
}

/**
 * focus_queue_jobs{state}: read from Redis when Prometheus scrapes, so every
 * instance reports the same cluster-wide backlog (aggregate with max, not
 * sum). Unknown (NaN) rather than a false 0 when Redis cannot answer.
 */
export function registerQueueDepthGauge(options: QueueDepthGaugeOptions): Gauge {
  const { counts, timeoutMs } = options;
  return new Gauge({
    name: 'focus_queue_jobs',
    help: 'Jobs in the chat queue by state (waiting, active, delayed), cluster-wide: the same on every instance.',
    labelNames: ['state'] as const,
    registers: [options.registry],
    async collect() {
      try {
        const current = await withTimeout(counts(), timeoutMs);
        for (const state of ['waiting', 'active', 'delayed'] as const) {
          this.set({ state }, current[state]);
        }
      } catch {
        for (const state of ['waiting', 'active', 'delayed'] as const) {
          this.set({ state }, Number.NaN);
        }
      }
    },
  });
}
