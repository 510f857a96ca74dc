/**
 * What went wrong upstream, in the terms our retry and fallback policy needs.
 * - timeout, unavailable, rate_limited: transient, worth retrying or falling back
 * - rejected: the provider refused this request (4xx); retrying will not help
 * - misconfigured: our key or model is wrong (401/403/404); an operator must act
 * - interrupted: a stream failed (or its client left) after its first piece of
 *   text; neither a retry nor the fallback can take back what was sent
 */
import type { UpstreamFailure } from '../errors.js';
import { parseRetryAfterMs } from '../shared/retry-after.js';
import type { UpstreamLimits } from './types.js';

export type UpstreamErrorKind = UpstreamFailure['kind'];

export class UpstreamError extends Error implements UpstreamFailure {
  constructor(
    readonly kind: UpstreamErrorKind,
    readonly provider: string,
    message: string,
    readonly status?: number,
    /** From the provider's retry-after header, when it sent one. */
    readonly retryAfterMs?: number,
    /** The rate-limit headers of the failed answer (a 429's tell whether tokens or requests ran out). */
    readonly limits?: UpstreamLimits,
    /** An interrupted stream: the tokens it had spent (prompt and text sent), to settle quota and budget. */
    readonly spentTokens?: number,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }

  get retryable(): boolean {
    return this.kind === 'timeout' || this.kind === 'unavailable' || this.kind === 'rate_limited';
  }
}

export function isUpstreamError(error: unknown): error is UpstreamError {
  return error instanceof UpstreamError;
}

/** Parses Groq's reset durations such as "2m59.56s", "7.66s" or "120ms" into milliseconds. */
export function parseDurationMs(value: string | null | undefined): number | undefined {
  if (!value) {
    return undefined;
  }
  const pattern = /(\d+(?:\.\d+)?)(h|ms|m|s)/g;
  const unitMs: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let total = 0;
  let matched = '';
  for (const match of value.matchAll(pattern)) {
    total += Number(match[1]) * (unitMs[match[2] as string] ?? 0);
    matched += match[0];
  }
  return matched.length === value.trim().length && matched.length > 0 ? Math.round(total) : undefined;
}

/** Reads the x-ratelimit-* headers that Groq (and OpenAI-compatible servers that mimic it) send. */
export function readRateLimitHeaders(headers: Headers | undefined): UpstreamLimits | undefined {
  if (!headers) {
    return undefined;
  }
  const number = (name: string) => {
    const raw = headers.get(name);
    const value = raw === null ? Number.NaN : Number(raw);
    return Number.isFinite(value) ? value : undefined;
  };
  return {
    limitTokens: number('x-ratelimit-limit-tokens'),
    remainingTokens: number('x-ratelimit-remaining-tokens'),
    resetTokensMs: parseDurationMs(headers.get('x-ratelimit-reset-tokens')),
    limitRequests: number('x-ratelimit-limit-requests'),
    remainingRequests: number('x-ratelimit-remaining-requests'),
    resetRequestsMs: parseDurationMs(headers.get('x-ratelimit-reset-requests')),
  };
}

/** Classifies an HTTP error answer; both SDKs (groq-sdk, openai) report status and headers alike. */
export function upstreamErrorFromStatus(status: number, headers: Headers | undefined, provider: string): UpstreamError {
  const retryAfterMs = parseRetryAfterMs(headers);
  if (status === 429) {
    return new UpstreamError(
      'rate_limited',
      provider,
      'upstream rate limited',
      status,
      retryAfterMs,
      readRateLimitHeaders(headers),
    );
  }
  if (status === 401 || status === 403 || status === 404) {
    return new UpstreamError(
      'misconfigured',
      provider,
      `upstream refused our credentials or model (${status})`,
      status,
    );
  }
  if (status === 408 || status === 409 || status >= 500) {
    return new UpstreamError('unavailable', provider, `upstream error ${status}`, status, retryAfterMs);
  }
  return new UpstreamError('rejected', provider, `upstream rejected the request (${status})`, status);
}
