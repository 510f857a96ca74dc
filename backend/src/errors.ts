/**
 * The catalogue of errors a client can see. Each has an HTTP status and a
 * stable snake_case code the app can switch on; anything else thrown is
 * rendered as a generic 500 by the error middleware.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const invalidJson = () => new AppError(400, 'invalid_json', 'The request body is not valid JSON.');

export const invalidRequest = (message: string) => new AppError(400, 'invalid_request', message);

export const unauthorized = (message = 'Missing or invalid credentials.') =>
  new AppError(401, 'unauthorized', message, { 'WWW-Authenticate': 'Bearer' });

export const invalidToken = () =>
  new AppError(401, 'invalid_token', 'The access token is invalid, expired or revoked. Sign in again.', {
    'WWW-Authenticate': 'Bearer error="invalid_token"',
  });

export const authRequired = () =>
  new AppError(401, 'auth_required', 'Sign in first: send Authorization: Bearer <token> from POST /api/auth/device.', {
    'WWW-Authenticate': 'Bearer',
  });

const humanWait = (seconds: number) =>
  seconds < 120 ? `${seconds} s` : seconds < 7200 ? `${Math.ceil(seconds / 60)} min` : `${Math.ceil(seconds / 3600)} h`;

export const budgetExhausted = (retryAfterSeconds: number) =>
  new AppError(
    429,
    'budget_exhausted',
    `Your allowance of answers is used up for now. Try again in ${humanWait(retryAfterSeconds)}.`,
    { 'Retry-After': String(retryAfterSeconds) },
  );

export const tooManyConcurrent = () =>
  new AppError(429, 'too_many_concurrent', 'Wait for your other answers to finish, then ask again.', {
    'Retry-After': '1',
  });

export const payloadTooLarge = (limitBytes: number) =>
  new AppError(413, 'payload_too_large', `The request body is larger than ${limitBytes} bytes.`);

export const unsupportedMediaType = () =>
  new AppError(415, 'unsupported_media_type', 'Send the body as JSON with Content-Type: application/json.');

export const rateLimited = (retryAfterSeconds: number, headers: Record<string, string> = {}) =>
  new AppError(429, 'rate_limited', `Too many requests. Try again in ${retryAfterSeconds} s.`, {
    ...headers,
    'Retry-After': String(retryAfterSeconds),
  });

export const upstreamUnavailable = (
  message = 'The AI coach is unavailable right now. Please try again shortly.',
  retryAfterSeconds?: number,
) =>
  new AppError(
    503,
    'upstream_unavailable',
    message,
    retryAfterSeconds ? { 'Retry-After': String(retryAfterSeconds) } : {},
  );

export const upstreamError = (message = 'The AI coach answered with an error.') =>
  new AppError(502, 'upstream_error', message);

export const upstreamTimeout = () =>
  new AppError(504, 'upstream_timeout', 'The AI coach took too long to answer. Please try again.');

export const upstreamRateLimited = (retryAfterSeconds: number) =>
  new AppError(503, 'upstream_rate_limited', `The AI coach is at capacity. Try again in ${retryAfterSeconds} s.`, {
    'Retry-After': String(retryAfterSeconds),
  });

export const serviceUnavailable = (message: string, retryAfterSeconds = 5) =>
  new AppError(503, 'service_unavailable', message, { 'Retry-After': String(retryAfterSeconds) });

export const queueFull = (retryAfterSeconds: number) =>
  new AppError(503, 'queue_full', `Too many messages are waiting right now. Try again in ${retryAfterSeconds} s.`, {
    'Retry-After': String(retryAfterSeconds),
  });

export const idempotencyKeyReused = () =>
  new AppError(
    422,
    'idempotency_key_reused',
    'This Idempotency-Key was already used with a different message; use a new key for a new message.',
  );

export const internalError = () => new AppError(500, 'internal_error', 'Something went wrong on our side.');

const DEFAULT_RETRY_AFTER_SECONDS = 5;

/**
 * An upstream failure as this catalogue maps it (llm's UpstreamError is one):
 * declared here, so the leaf names the kinds and llm imports them, not the reverse.
 */
export interface UpstreamFailure {
  readonly kind: 'timeout' | 'unavailable' | 'rate_limited' | 'rejected' | 'misconfigured' | 'interrupted';
  readonly status?: number | undefined;
  readonly retryAfterMs?: number | undefined;
}

/** How an upstream failure is told to the client: 502/503/504 with a stable code, never provider detail. */
export function upstreamToAppError(error: UpstreamFailure): AppError {
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
