import type { Queue } from 'bullmq';
import type { Logger } from '../telemetry/logger.js';
import type { JobLedger } from './job-ledger.js';

export interface LineReconcilerOptions {
  queue: Queue;
  ledger: JobLedger;
  logger: Logger;
  intervalMs?: number;
  /** How many of the oldest entries each pass checks. */
  depth?: number;
}

/**
 * Keeps the line (positions) honest when a step was lost: an instance killed
 * between admitting a job and adding it to BullMQ, or a job that BullMQ
 * finished or removed while its line entry stayed. Only the oldest entries are
 * checked, a few per pass: a stale entry further back reaches the front as the
 * line moves. An entry BullMQ does not know is dropped only when seen twice, so
 * an admission still on its way to BullMQ is left alone.
 */
export function startLineReconciler(options: LineReconcilerOptions): { stop(): void } {
  const { queue, ledger, logger } = options;
  const depth = options.depth ?? 10;
  let unknownSeen = new Set<string>();
  let running = false;

  async function pass() {
    const unknownNow = new Set<string>();
    for (const { jobId, score } of await ledger.lineHead(depth)) {
      const state = await queue.getJobState(jobId);
      if (state === 'waiting' || state === 'delayed' || state === 'prioritized' || state === 'waiting-children') {
        continue;
      }
      if (state === 'unknown' && !unknownSeen.has(jobId)) {
        unknownNow.add(jobId);
        continue;
      }
      await ledger.dropStale(jobId, score);
      logger.info({ jobId, state }, 'dropped a stale entry from the queue line');
    }
    unknownSeen = unknownNow;
  }

  const timer = setInterval(() => {
    if (running) {
      return;
    }
    running = true;
    void pass()
      .catch((error: unknown) => logger.debug({ err: error }, 'line reconciliation skipped'))
      .finally(() => {
        running = false;
      });
  }, options.intervalMs ?? 5000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
    },
  };
}
