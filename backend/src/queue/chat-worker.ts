import { performance } from 'node:perf_hooks';
import { DelayedError, type Job, type Queue, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ChatService } from '../chat/chat-service.js';
import { isUpstreamError } from '../llm/upstream-error.js';
import { createOutageReporter } from '../shared/outage.js';
import { withTimeout } from '../shared/with-timeout.js';
import { runWithRequestId } from '../telemetry/log-context.js';
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

/** What the steps of one worker share. */
interface WorkerState {
  options: ChatWorkerOptions;
  log: Logger;
  /** Set by close(): an aborted attempt is then handed back, not failed. */
  closing: boolean;
  /**
   * Jobs whose record is gone (expired, or deleted with its owner's data): the
   * processor ends them, and BullMQ's copy, which holds the conversation, is
   * removed once they are unlocked.
   */
  orphans: Set<string>;
}

export function startChatWorker(options: ChatWorkerOptions): ChatWorker {
  const state: WorkerState = {
    options,
    log: options.logger.child({ component: 'queue-worker' }),
    closing: false,
    orphans: new Set(),
  };
  const worker = createWorker(state);
  watchWorker(state, worker);
  const reconciler = startLineReconciler({ queue: options.queue, ledger: options.ledger, logger: state.log });
  return {
    worker,
    async close() {
      state.closing = true;
      reconciler.stop();
      await closeWorker(state, worker);
    },
  };
}

/** True when the write found the record gone: the job then just ends. */
function orphaned(state: WorkerState, jobId: string, write: RecordWrite): boolean {
  if (write === 'gone') {
    state.orphans.add(jobId);
  }
  return write === 'gone';
}

function createWorker(state: WorkerState): Worker<ChatJobData, void> {
  const { options } = state;
  const { backoffMs } = options;
  // Three parameters: BullMQ passes the abort signal only to processors that declare it.
  // Run in the POST's log context: every line the job logs, in any module, carries its request id.
  const processor = (job: Job<ChatJobData, void>, token?: string, signal?: AbortSignal) =>
    runWithRequestId(job.data.requestId, () => processChatJob(state, job, token, signal));
  return new Worker<ChatJobData, void>(CHAT_QUEUE_NAME, processor, {
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
}

async function processChatJob(
  state: WorkerState,
  job: Job<ChatJobData, void>,
  token: string | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { chat, ledger, metrics, resultTtlSeconds } = state.options;
  const jobId = job.id as string;
  const start = await ledger.start(jobId);
  if (start.kind === 'gone') {
    state.orphans.add(jobId);
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
    orphaned(state, jobId, await ledger.finish(jobId, completed, resultTtlSeconds, performance.now() - began));
  } catch (error) {
    await failAttempt(state, job, token, signal, error, performance.now() - began);
  }
}

/**
 * Throws to tell BullMQ whether the job is delayed, retried, handed back or
 * failed; returns only when the record is gone, so the job just ends.
 */
async function failAttempt(
  state: WorkerState,
  job: Job<ChatJobData, void>,
  token: string | undefined,
  signal: AbortSignal | undefined,
  error: unknown,
  attemptMs: number,
): Promise<void> {
  const { ledger, backoffMs, resultTtlSeconds } = state.options;
  const { log } = state;
  const jobId = job.id as string;
  if (state.closing && signal?.aborted) {
    if (orphaned(state, jobId, await ledger.park(jobId, 'handed_back', 0))) {
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
    if (orphaned(state, jobId, await ledger.park(jobId, 'delayed', verdict.delayMs))) {
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
    if (orphaned(state, jobId, await ledger.park(jobId, 'delayed', delayMs, attemptMs))) {
      return;
    }
    log.warn({ jobId, attempt: failedAttempts, delayMs, upstream }, 'job attempt failed; will retry');
    throw error;
  }
  const failed = { state: 'failed', error: publicError(error) } as const;
  if (orphaned(state, jobId, await ledger.finish(jobId, failed, resultTtlSeconds, attemptMs))) {
    return;
  }
  log.warn({ jobId, attempt: failedAttempts, upstream, err: upstream ? undefined : error }, 'job failed');
  throw verdict.kind === 'give_up' ? new UnrecoverableError((error as Error).message) : error;
}

/** Removes BullMQ's copy of a job whose record is gone; a failure leaves it to BullMQ's age limit. */
function removeOrphan(state: WorkerState, job: Job<ChatJobData, void>) {
  void job
    .remove()
    .catch((error: unknown) => state.log.warn({ err: error, jobId: job.id }, 'cannot remove orphan job'));
}

/** BullMQ's events: metrics, orphans removed, and the ledger told of what BullMQ did on its own. */
function watchWorker(state: WorkerState, worker: Worker<ChatJobData, void>) {
  const { ledger, metrics, resultTtlSeconds } = state.options;
  const { log } = state;
  worker.on('completed', (job) => {
    if (state.orphans.delete(job.id as string)) {
      removeOrphan(state, job);
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
          removeOrphan(state, job);
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
}

/** Lets active jobs finish within the grace period, then hands them back; never waits for ever on a dead Redis. */
async function closeWorker(state: WorkerState, worker: Worker<ChatJobData, void>): Promise<void> {
  const { options, log } = state;
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
}
