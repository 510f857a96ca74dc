import { parseRetryAfterMs } from '../shared/retry-after.js';
import { sleep } from '../shared/sleep.js';
import { cancelled, FocusChatError } from './focus-chat-error.js';

/** The client's options with their defaults filled in. */
export interface ClientSettings {
  baseUrl: string;
  doFetch: typeof fetch;
  timeoutMs: number;
  maxPostAttempts: number;
  requestTimeoutMs: number;
  minPollMs: number;
  maxPollMs: number;
  newKey: () => string;
  /** The headers of every call: the signed-in token and the app's own. */
  headers: () => Record<string, string>;
}

/** A whole HTTP exchange: status, Retry-After and the JSON body (undefined when not JSON). */
export interface Answer {
  status: number;
  retryAfterMs: number | undefined;
  body: unknown;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function errorFrom(answer: Answer, jobId?: string): FocusChatError {
  const body = answer.body as { error?: { code?: string; message?: string } } | undefined;
  return new FocusChatError(
    body?.error?.code ?? `http_${answer.status}`,
    body?.error?.message ?? `The backend answered ${answer.status}.`,
    answer.status,
    jobId,
  );
}

/** A deadline shared by every step of one call: waits past it are a timeout error, calls are cut at it. */
export interface DeadlineGuard {
  /** Waits ms; past the deadline, throws `instead` (the error that asked for the wait) or a timeout. */
  wait(ms: number, instead?: FocusChatError): Promise<void>;
  call(url: string, init: RequestInit): Promise<Answer>;
}

export function deadlineGuard(settings: ClientSettings, signal: AbortSignal | undefined): DeadlineGuard {
  const deadline = Date.now() + settings.timeoutMs;
  return {
    async wait(ms, instead) {
      if (Date.now() + ms > deadline) {
        throw instead ?? new FocusChatError('timeout', 'No answer in time. Please try again.');
      }
      await sleep(ms, signal);
      if (signal?.aborted) {
        throw cancelled();
      }
    },
    call: (url, init) =>
      exchange(
        settings.doFetch,
        url,
        init,
        Math.max(1, Math.min(settings.requestTimeoutMs, deadline - Date.now())),
        signal,
      ),
  };
}

/**
 * One call, body included, aborted by the caller's signal or after `ms`: a
 * frozen instance or a vanished host never sends a reset, and fetch alone
 * would wait for it for minutes (or forever, outside Node). Throws on any failure on the way.
 */
async function exchange(
  doFetch: typeof fetch,
  url: string,
  init: RequestInit,
  ms: number,
  signal: AbortSignal | undefined,
): Promise<Answer> {
  const controller = new AbortController();
  const abort = () => controller.abort();
  const timer = setTimeout(abort, ms);
  signal?.addEventListener('abort', abort, { once: true });
  if (signal?.aborted) {
    abort();
  }
  try {
    const response = await doFetch(url, { ...init, signal: controller.signal });
    const text = await response.text();
    return { status: response.status, retryAfterMs: parseRetryAfterMs(response.headers), body: parseJson(text) };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', abort);
  }
}
