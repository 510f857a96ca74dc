import { AppError, internalError, upstreamToAppError } from '../errors.js';
import { isUpstreamError } from '../llm/upstream-error.js';
import type { PublicError } from './job-ledger.js';

/** Used when the upstream says "rate limited" without saying for how long. */
export const DEFAULT_QUOTA_DELAY_MS = 5000;
/**
 * The shortest quota delay: while calls in flight hold their token estimates the
 * governor says "room in ~100 ms" again and again; a queued job is not in a hurry,
 * and re-queuing it ten times a second only churns Redis.
 */
export const MIN_QUOTA_DELAY_MS = 1000;

/**
 * What a failed attempt means for the job:
 * - wait: the upstream (or our quota governor) is at capacity; sit out the
 *   delay without spending an attempt, the answer is only late
 * - give_up: the request itself was refused or our setup is wrong; another
 *   attempt would fail the same way
 * - retry: anything else, with exponential backoff, while attempts remain
 */
export type FailureVerdict = { kind: 'wait'; delayMs: number } | { kind: 'give_up' } | { kind: 'retry' };

/** A user's refusal (budget, concurrent calls) that ends within this is waited out; a longer one fails the job. */
const USER_LIMIT_MAX_WAIT_SECONDS = 60;

export function judgeFailure(error: unknown): FailureVerdict {
  if (error instanceof AppError && error.status === 429) {
    const seconds = Number(error.headers['Retry-After'] ?? USER_LIMIT_MAX_WAIT_SECONDS + 1);
    return seconds <= USER_LIMIT_MAX_WAIT_SECONDS
      ? { kind: 'wait', delayMs: Math.max(seconds * 1000, MIN_QUOTA_DELAY_MS) }
      : { kind: 'give_up' };
  }
  if (!isUpstreamError(error)) {
    return { kind: 'retry' };
  }
  if (error.kind === 'rate_limited') {
    return { kind: 'wait', delayMs: Math.max(error.retryAfterMs ?? DEFAULT_QUOTA_DELAY_MS, MIN_QUOTA_DELAY_MS) };
  }
  if (error.kind === 'rejected' || error.kind === 'misconfigured') {
    return { kind: 'give_up' };
  }
  return { kind: 'retry' };
}

/**
 * Delay before the next attempt after `failedAttempts` failures (1, 2, …):
 * baseMs doubled each time, and never shorter than the upstream's retry-after.
 * BullMQ calls it as the job's backoff strategy; the ledger uses it to tell the
 * client when the job will be back.
 */
export function jobRetryDelayMs(failedAttempts: number, baseMs: number, error: unknown): number {
  const backoff = baseMs * 2 ** Math.max(0, failedAttempts - 1);
  const retryAfterMs = isUpstreamError(error) ? (error.retryAfterMs ?? 0) : 0;
  return Math.max(backoff, retryAfterMs);
}

/** The error a client sees for a failed job: the same codes and messages as the HTTP API, never internals. */
export function publicError(error: unknown): PublicError {
  const appError =
    error instanceof AppError ? error : isUpstreamError(error) ? upstreamToAppError(error) : internalError();
  return { code: appError.code, message: appError.message };
}
