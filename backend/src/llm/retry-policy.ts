import { ExponentialBackoff, halfJitterGenerator, type IBackoff } from 'cockatiel';

export interface RetryPolicy {
  /** Calls per provider per request, the first included. */
  maxAttempts: number;
  /** Total time one provider may take for a request, calls and pauses included. */
  budgetMs: number;
  /** Backoff before the first retry; doubles with each further one. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** The pauses between one request's retries on one provider. */
export interface RetryBackoff {
  /** The pause before the next retry, never shorter than the upstream's retry-after. */
  next(retryAfterMs: number | undefined): number;
}

/**
 * cockatiel's exponential backoff with "equal jitter" (halfJitterGenerator:
 * half of each pause fixed, half random), so instances that failed together do
 * not retry together. The gateway keeps its own loop rather than cockatiel's
 * retry(): each attempt reserves and settles quota; a spent quota or an open
 * circuit ends the route without being a failure to retry; whether to retry
 * depends on the pause (the time budget must leave room for the call), which
 * retry() computes only after it has decided; and its pause ignores the abort
 * signal. The retry-after floor is ours too: the generator knows no upstream.
 */
export function createRetryBackoff(policy: RetryPolicy): RetryBackoff {
  const factory = new ExponentialBackoff({
    initialDelay: policy.baseDelayMs,
    maxDelay: policy.maxDelayMs,
    generator: halfJitterGenerator,
  });
  let backoff: IBackoff<unknown> | undefined;
  return {
    next(retryAfterMs) {
      backoff = backoff ? backoff.next(undefined) : factory.next();
      return Math.max(backoff.duration, retryAfterMs ?? 0);
    },
  };
}
