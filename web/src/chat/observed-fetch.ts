/**
 * The fetch the page hands to the client helper (backend/src/client): it lets
 * the page see what the helper does not report, and waits out short refusals
 * with a visible countdown.
 *
 * - A 429 or 503 to a chat POST with a Retry-After of at most `maxWaitSeconds`
 *   is waited out here (the page shows the countdown), then the very same
 *   request is sent again: same body, same Idempotency-Key.
 * - A longer Retry-After goes back to the helper unchanged (it falls back to the
 *   queue, waits or gives up by its own deadline); the page is told how long.
 * - A 202 from the queue reports the place in line at once, before the first poll.
 */

export interface FetchObserver {
  /** A countdown of `seconds` starts; resolve when it has run out (reject on abort). */
  countdown(seconds: number, signal: AbortSignal | undefined): Promise<void>;
  /** A refusal longer than this wrapper waits for, passed on to the helper. */
  longWait(seconds: number): void;
  /** The queue took the message: its place in line and estimate, seconds. */
  queued(position: number, estimatedTime: number): void;
}

const CHAT_POST = /\/api\/chat\/(stream|queue)$/;

/** Retry-After in seconds (or an HTTP date); undefined when absent or unreadable. */
export function retryAfterSeconds(value: string | null, now = Date.now()): number | undefined {
  if (!value) {
    return undefined;
  }
  const seconds = Number(value);
  if (Number.isFinite(seconds)) {
    return Math.max(0, seconds);
  }
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

function pathOf(input: RequestInfo | URL): string {
  const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  return new URL(href, document.baseURI).pathname;
}

export function observedFetch(
  base: typeof fetch,
  observer: FetchObserver,
  { maxWaitSeconds = 20, maxWaits = 3 } = {},
): typeof fetch {
  return async function observed(input, init) {
    const path = pathOf(input);
    const chatPost = init?.method === 'POST' && CHAT_POST.test(path);
    for (let waits = 0; ; waits += 1) {
      const response = await base(input, init);
      if (!chatPost) {
        return response;
      }
      if (response.status === 429 || response.status === 503) {
        const seconds = retryAfterSeconds(response.headers.get('retry-after'));
        if (seconds !== undefined && seconds <= maxWaitSeconds && waits < maxWaits) {
          void response.body?.cancel().catch(() => undefined);
          await observer.countdown(Math.max(1, Math.ceil(seconds)), init?.signal ?? undefined);
          continue;
        }
        if (seconds !== undefined) {
          observer.longWait(seconds);
        }
        return response;
      }
      if (response.status === 202 && path.endsWith('/queue')) {
        const job = (await response
          .clone()
          .json()
          .catch(() => undefined)) as { position?: number; estimatedTime?: number } | undefined;
        if (typeof job?.position === 'number' && typeof job.estimatedTime === 'number') {
          observer.queued(job.position, job.estimatedTime);
        }
      }
      return response;
    }
  };
}
