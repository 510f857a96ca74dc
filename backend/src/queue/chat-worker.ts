import { performance } from 'node:perf_hooks';
import { DelayedError, type Job, type Queue, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ChatService } from '../chat/chat-service.js';
import { isUpstreamError } from '../llm/upstream-error.js';
import { createOutageReporter } from '../shared/outage.js';
import { withTimeout } from '../shared/with-timeout.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { ChatJobData } from './chat-queue.js';
import type { JobLedger, RecordWrite } from './job-ledger.js';
import { startLineReconciler } from './line-reconciler.js';
import { bullPrefix, CHAT_QUEUE_NAME } from './queue-keys.js';
import { jobRetryDelayMs, judgeFailure, publicError } from './retry-policy.js';

export interface ChatWorkerOptions {
  /** A 'queue' role connection (no command timeout, waits through reconnects); BullMQ duplicates it for blocking reads. */
  connection: Redis;
  redisPrefix: string;
  /** The producer's queue, read by the line reconciler. */
  queue: Queue<ChatJobData>;
  /** The same chat service as POST /api/chat: cache, then the LLM. */
  chat: Pick<ChatService, 'answer'>;
  /** The ledger on the worker's connection. */
  ledger: JobLedger;
  instanceId: string;
  concurrency: number;
  backoffMs: number;
  resultTtlSeconds: number;
  lockMs: number;
  /** On shutdown, active jobs get this long to finish before they are handed back to the queue. */
  shutdownGraceMs: number;
  metrics: Metrics;
  logger: Logger;
}

export interface ChatWorker {
  readonly worker: Worker<ChatJobData, void>;
  /** Finishes active jobs (or hands them back after the grace period), then stops. */
  close(): Promise<void>;
}

/** Recovered once after its worker died; a job whose second worker dies too (a poison job?) fails. */
const MAX_STALLED_COUNT = 1;
const SHUTDOWN_REASON = 'instance shutting down';
const HAND_BACK_TIMEOUT_MS = 2000;

function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return withTimeout(
    promise.then(
      () => true,
      () => true,
    ),
    ms,
  ).catch(() => false);
}

export function startChatWorker(options: ChatWorkerOptions): ChatWorker {
  const { chat, ledger, metrics, backoffMs, resultTtlSeconds } = options;
  const log = options.logger.child({ component: 'queue-worker' });
  let closing = false;
  /**
   * Jobs whose record is gone (expired, or deleted with its owner's data): the
   * processor ends them, and BullMQ's copy, which holds the conversation, is
   * removed once they are unlocked.
   */
  const orphans = new Set<string>();

  /** True when the write found the record gone: the job then just ends. */
  function orphaned(jobId: string, write: RecordWrite): boolean {
    if (write === 'gone') {
      orphans.add(jobId);
    }
    return write === 'gone';
  }

  /**
   * Throws to tell BullMQ whether the job is delayed, retried, handed back or
   * failed; returns only when the record is gone, so the job just ends.
   */
  async function failAttempt(
    job: Job<ChatJobData, void>,
    token: string | undefined,
    signal: AbortSignal | undefined,
    error: unknown,
    attemptMs: number,
  ): Promise<void> {
    const jobId = job.id as string;
    if (closing && signal?.aborted) {
      if (orphaned(jobId, await ledger.park(jobId, 'handed_back', 0))) {
        return;
      }
      await job.moveToWait(token);
      log.info({ jobId }, 'job handed back at shutdown');
      throw new WaitingError();
    }
    const verdict = judgeFailure(error);
    const upstream = isUpstreamError(error) ? { kind: error.kind, status: error.status } : undefined;
    if (verdict.kind === 'wait') {
      // Not an attempt: the answer is only late. BullMQ's moveToDelayed skips the attempt count.
      if (orphaned(jobId, await ledger.park(jobId, 'delayed', verdict.delayMs))) {
        return;
      }
      await job.moveToDelayed(Date.now() + verdict.delayMs, token);
      log.info({ jobId, delayMs: verdict.delayMs }, 'job delayed: upstream at capacity');
      throw new DelayedError();
    }
    const failedAttempts = job.attemptsMade + 1;
    const attemptsLeft = verdict.kind === 'retry' && failedAttempts < (job.opts.attempts ?? 1);
    if (attemptsLeft) {
      const delayMs = jobRetryDelayMs(failedAttempts, backoffMs, error);
      if (orphaned(jobId, await ledger.park(jobId, 'delayed', delayMs, attemptMs))) {
        return;
      }
      log.warn({ jobId, attempt: failedAttempts, delayMs, upstream }, 'job attempt failed; will retry');
      throw error;
    }
    const failed = { state: 'failed', error: publicError(error) } as const;
    if (orphaned(jobId, await ledger.finish(jobId, failed, resultTtlSeconds, attemptMs))) {
      return;
    }
    log.warn({ jobId, attempt: failedAttempts, upstream, err: upstream ? undefined : error }, 'job failed');
    throw verdict.kind === 'give_up' ? new UnrecoverableError((error as Error).message) : error;
  }

  // Three parameters: BullMQ passes the abort signal only to processors that declare it.
  async function processChatJob(job: Job<ChatJobData, void>, token?: string, signal?: AbortSignal): Promise<void> {
    const jobId = job.id as string;
    const start = await ledger.start(jobId);
    if (start.kind === 'gone') {
      orphans.add(jobId);
      return;
    }
    if (start.kind === 'finished') {
      // Answered before a crash: nothing to do.
      return;
    }
    if (start.kind === 'first') {
      metrics.queueWait.observe(start.waitedMs / 1000);
    }
    const began = performance.now();
    try {
      const answer = await chat.answer(job.data.request, { signal, maxQuotaWaitMs: 0, caller: job.data.caller });
      const completed = { state: 'completed', result: answer } as const;
      orphaned(jobId, await ledger.finish(jobId, completed, resultTtlSeconds, performance.now() - began));
    } catch (error) {
      await failAttempt(job, token, signal, error, performance.now() - began);
    }
  }

  const worker = new Worker<ChatJobData, void>(CHAT_QUEUE_NAME, processChatJob, {
    connection: options.connection,
    prefix: bullPrefix(options.redisPrefix),
    name: options.instanceId,
    concurrency: options.concurrency,
    lockDuration: options.lockMs,
    // A dead worker's job is moved back within about two intervals, not the default minute.
    stalledInterval: options.lockMs,
    maxStalledCount: MAX_STALLED_COUNT,
    settings: {
      backoffStrategy: (attemptsMade: number, _type?: string, error?: Error) =>
        jobRetryDelayMs(attemptsMade, backoffMs, error),
    },
  });

  /** Removes BullMQ's copy of a job whose record is gone; a failure leaves it to BullMQ's age limit. */
  function removeOrphan(job: Job<ChatJobData, void>) {
    void job.remove().catch((error: unknown) => log.warn({ err: error, jobId: job.id }, 'cannot remove orphan job'));
  }

  worker.on('completed', (job) => {
    if (orphans.delete(job.id as string)) {
      removeOrphan(job);
      return;
    }
    metrics.queueCompleted.inc();
  });
  worker.on('failed', (job, error) => {
    // finishedOn is set only when no attempt is left; a retried attempt is not a failed job.
    if (!job?.finishedOn) {
      return;
    }
    metrics.queueFailed.inc();
    // Jobs failed without running (stalled too often) have no ledger outcome yet; others keep theirs.
    void ledger
      .finish(job.id as string, { state: 'failed', error: publicError(error) }, resultTtlSeconds)
      .then((write) => {
        if (write === 'gone') {
          removeOrphan(job);
        }
      })
      .catch((writeError: unknown) => log.error({ err: writeError, jobId: job.id }, 'cannot record failed job'));
  });
  worker.on('stalled', (jobId) => {
    log.warn({ jobId }, 'job stalled (its worker died or froze); back in line');
    void ledger
      .park(jobId, 'stalled', 0)
      .catch((error: unknown) => log.error({ err: error, jobId }, 'cannot record stalled job'));
  });
  // Redis outages make BullMQ report every reconnect attempt: log the first only.
  const outage = createOutageReporter({
    started: (error) => log.warn({ err: { message: (error as Error).message } }, 'queue worker error; BullMQ retries'),
    ended: () => log.info('queue worker connected again'),
  });
  worker.on('error', outage.failed);
  worker.on('ready', outage.succeeded);

  const reconciler = startLineReconciler({ queue: options.queue, ledger, logger: log });

  return {
    worker,
    async close() {
      closing = true;
      reconciler.stop();
      const closed = worker.close();
      if (await settlesWithin(closed, options.shutdownGraceMs)) {
        return;
      }
      log.warn({ graceMs: options.shutdownGraceMs }, 'active jobs still running at shutdown; handing them back');
      worker.cancelAllJobs(SHUTDOWN_REASON);
      // With Redis unreachable BullMQ's close waits for a reconnect that may never come:
      // give up after a bound and drop the connections; stall detection recovers the jobs.
      if (!(await settlesWithin(closed, HAND_BACK_TIMEOUT_MS))) {
        log.warn('queue worker could not close cleanly (Redis unreachable?); disconnecting');
        options.connection.disconnect();
        void worker.disconnect().catch(() => undefined);
      }
    },
  };
}
