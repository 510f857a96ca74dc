/** What both fetch's Headers and the SDKs' header objects offer. */
export interface HeaderSource {
  get(name: string): string | null;
}

/**
 * Parses retry-after (seconds or an HTTP date) and retry-after-ms into
 * milliseconds: the upstream's answers (llm) and ours (the browser client).
 */
export function parseRetryAfterMs(headers: HeaderSource | undefined, now = Date.now()): number | undefined {
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
