/**
 * What went wrong upstream, in the terms our retry and fallback policy needs.
 * - timeout, unavailable, rate_limited: transient, worth retrying or falling back
 * - rejected: the provider refused this request (4xx); retrying will not help
 * - misconfigured: our key or model is wrong (401/403/404); an operator must act
 */
export type UpstreamErrorKind = 'timeout' | 'unavailable' | 'rate_limited' | 'rejected' | 'misconfigured';

export class UpstreamError extends Error {
  constructor(
    readonly kind: UpstreamErrorKind,
    readonly provider: string,
    message: string,
    readonly status?: number,
    /** From the provider's retry-after header, when it sent one. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }

  get retryable(): boolean {
    return this.kind === 'timeout' || this.kind === 'unavailable' || this.kind === 'rate_limited';
  }
}

/** Parses retry-after (seconds or an HTTP date) and retry-after-ms into milliseconds. */
export function parseRetryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) {
    return undefined;
  }
  const milliseconds = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') && Number.isFinite(milliseconds) && milliseconds >= 0) {
    return milliseconds;
  }
  const value = headers.get('retry-after');
  if (!value) {
    return undefined;
  }
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) {
    return seconds * 1000;
  }
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
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
