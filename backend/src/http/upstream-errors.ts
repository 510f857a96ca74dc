import { AppError, upstreamError, upstreamRateLimited, upstreamTimeout, upstreamUnavailable } from '../errors.js';
import { UpstreamError } from '../llm/upstream-error.js';

const DEFAULT_RETRY_AFTER_SECONDS = 5;

/** How an upstream failure is told to the client: 502/503/504 with a stable code, never provider detail. */
export function upstreamToAppError(error: UpstreamError): AppError {
  const retryAfterSeconds = Math.max(1, Math.ceil((error.retryAfterMs ?? DEFAULT_RETRY_AFTER_SECONDS * 1000) / 1000));
  switch (error.kind) {
    case 'timeout':
      return upstreamTimeout();
    case 'rate_limited':
      return upstreamRateLimited(retryAfterSeconds);
    case 'unavailable':
      return error.status === undefined
        ? upstreamUnavailable(undefined, retryAfterSeconds)
        : upstreamError('The AI coach answered with an error. Please try again.');
    case 'rejected':
      return new AppError(502, 'upstream_rejected', 'The AI coach could not handle this request.');
    case 'misconfigured':
      return new AppError(502, 'upstream_misconfigured', 'The AI coach is misconfigured; we have been notified.');
    case 'interrupted':
      return new AppError(502, 'upstream_interrupted', 'The answer was cut off. Please ask again.');
  }
}

export function isUpstreamError(error: unknown): error is UpstreamError {
  return error instanceof UpstreamError;
}
