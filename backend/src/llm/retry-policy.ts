export interface RetryPolicy {
  /** Calls per provider per request, the first included. */
  maxAttempts: number;
  /** Total time one provider may take for a request, calls and pauses included. */
  budgetMs: number;
  /** Backoff before the first retry; doubles with each further one. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * The pause before retry number `retry` (1 = first retry): exponential backoff
 * with "equal jitter" (half fixed, half random), so instances that failed
 * together do not retry together; never shorter than the upstream's retry-after.
 */
export function retryDelayMs(
  retry: number,
  policy: RetryPolicy,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  const backoff = ceiling / 2 + random() * (ceiling / 2);
  return Math.round(Math.max(backoff, retryAfterMs ?? 0));
}
