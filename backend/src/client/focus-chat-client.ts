/**
 * The app's side of the chat queue: queue a message, follow it until the
 * answer is ready, and lose nothing on the way. Dependency-free (fetch,
 * timers, AbortSignal), so it runs in React Native, browsers and Node 20.
 *
 * - A POST that fails on the way (connection error, 502, 503, 504: e.g. the
 *   instance died under it) is sent again with the same Idempotency-Key, so
 *   the backend queues it once.
 * - 429 and 503 are retried after their Retry-After.
 * - Polls are paced by the job's estimatedTime (a third of it, within
 *   bounds): rare far back in line, frequent near the front; they back off on errors.
 */

export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

export interface ChatReply {
  response: string;
  cached: boolean;
  model: string;
  provider: string;
  usage: { promptTokens: number; completionTokens: number };
}

export interface QueuedJob {
  jobId: string;
  status: 'queued';
  position: number;
  estimatedTime: number;
  message: string;
}

export type JobStatus =
  | { status: 'completed'; result: ChatReply }
  | { status: 'failed'; error: { code: string; message: string } }
  | { status: 'processing'; state: 'waiting' | 'active' | 'delayed'; position: number; estimatedTime: number }
  | { status: 'not_found' };

export type JobProgress = Extract<JobStatus, { status: 'processing' }>;

/** Every failure the client reports: the backend's error code, or one of its own (network, timeout, aborted). */
export class FocusChatError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    readonly jobId?: string,
  ) {
    super(message);
    this.name = 'FocusChatError';
  }
}

export interface FocusChatClientOptions {
  /** Where the backend answers, e.g. https://focus.example.com (no trailing path). */
  baseUrl: string;
  /** Extra headers on every call, e.g. Authorization once the app has users. */
  headers?: () => Record<string, string>;
  fetch?: typeof fetch;
  /** Gives up after this long in total (POST retries and polls), ms. Default 5 minutes. */
  timeoutMs?: number;
  /** Attempts of the POST on connection errors and 5xx. Default 6. */
  maxPostAttempts?: number;
  /** Bounds of the poll interval, ms. Defaults 500 and 10 000. */
  minPollMs?: number;
  maxPollMs?: number;
  /** Idempotency-Key factory; crypto.randomUUID by default. */
  newKey?: () => string;
}

export interface SendOptions {
  history?: ChatTurn[];
  signal?: AbortSignal;
  /** Called on every poll while the job waits or runs: show the place in line. */
  onProgress?: (progress: JobProgress & { jobId: string }) => void;
}

export interface FocusChatClient {
  /** Queues the message and resolves with the answer, or rejects with a FocusChatError. */
  send(message: string, options?: SendOptions): Promise<ChatReply>;
  /** The two steps on their own, for apps that keep a jobId across restarts. */
  queue(message: string, options?: Omit<SendOptions, 'onProgress'> & { idempotencyKey?: string }): Promise<QueuedJob>;
  waitFor(jobId: string, options?: Omit<SendOptions, 'history'>): Promise<ChatReply>;
}

const RETRYABLE_POST = new Set([429, 502, 503, 504]);

/** Retry-After in seconds (or an HTTP date), as ms; undefined when absent or unreadable. */
function retryAfterMs(response: Response): number | undefined {
  const value = response.headers.get('retry-after');
  if (!value) {
    return undefined;
  }
  const seconds = Number(value);
  if (Number.isFinite(seconds)) {
    return Math.max(0, seconds * 1000);
  }
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new FocusChatError('aborted', 'The request was cancelled.'));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new FocusChatError('aborted', 'The request was cancelled.'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function errorFrom(response: Response, jobId?: string): Promise<FocusChatError> {
  const body = (await response.json().catch(() => undefined)) as
    | { error?: { code?: string; message?: string } }
    | undefined;
  return new FocusChatError(
    body?.error?.code ?? `http_${response.status}`,
    body?.error?.message ?? `The backend answered ${response.status}.`,
    response.status,
    jobId,
  );
}

export function createFocusChatClient(options: FocusChatClientOptions): FocusChatClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const timeoutMs = options.timeoutMs ?? 5 * 60_000;
  const maxPostAttempts = options.maxPostAttempts ?? 6;
  const minPollMs = options.minPollMs ?? 500;
  const maxPollMs = options.maxPollMs ?? 10_000;
  const newKey = options.newKey ?? (() => globalThis.crypto.randomUUID());

  /** A deadline shared by every step of one call; past it, a timeout error. */
  function deadlineGuard(signal: AbortSignal | undefined) {
    const deadline = Date.now() + timeoutMs;
    return async (ms: number) => {
      if (Date.now() + ms > deadline) {
        throw new FocusChatError('timeout', 'No answer in time. Please try again.');
      }
      await sleep(ms, signal);
    };
  }

  async function queue(
    message: string,
    queueOptions: Omit<SendOptions, 'onProgress'> & { idempotencyKey?: string } = {},
    wait = deadlineGuard(queueOptions.signal),
  ): Promise<QueuedJob> {
    const key = queueOptions.idempotencyKey ?? newKey();
    const body = JSON.stringify({ message, ...(queueOptions.history ? { history: queueOptions.history } : {}) });
    let lastError: FocusChatError = new FocusChatError('network_error', 'Cannot reach the backend.');
    for (let attempt = 1; attempt <= maxPostAttempts; attempt += 1) {
      const backoffMs = Math.min(500 * 2 ** (attempt - 1), 8000);
      let response: Response;
      try {
        response = await doFetch(`${baseUrl}/api/chat/queue`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key, ...options.headers?.() },
          body,
          signal: queueOptions.signal,
        });
      } catch (error) {
        if (queueOptions.signal?.aborted) {
          throw new FocusChatError('aborted', 'The request was cancelled.');
        }
        lastError = new FocusChatError('network_error', `Cannot reach the backend (${(error as Error).message}).`);
        await wait(backoffMs);
        continue;
      }
      if (response.status === 202) {
        return (await response.json()) as QueuedJob;
      }
      lastError = await errorFrom(response);
      if (!RETRYABLE_POST.has(response.status)) {
        throw lastError;
      }
      await wait(retryAfterMs(response) ?? backoffMs);
    }
    throw lastError;
  }

  async function waitFor(
    jobId: string,
    waitOptions: Omit<SendOptions, 'history'> = {},
    wait = deadlineGuard(waitOptions.signal),
    firstEstimate?: number,
  ): Promise<ChatReply> {
    const pace = (estimatedSeconds: number) => Math.min(maxPollMs, Math.max(minPollMs, (estimatedSeconds * 1000) / 3));
    let delayMs = firstEstimate === undefined ? minPollMs : pace(firstEstimate);
    let failures = 0;
    for (;;) {
      await wait(delayMs);
      let response: Response;
      try {
        response = await doFetch(`${baseUrl}/api/chat/status/${encodeURIComponent(jobId)}`, {
          headers: { ...options.headers?.() },
          signal: waitOptions.signal,
        });
      } catch {
        if (waitOptions.signal?.aborted) {
          throw new FocusChatError('aborted', 'The request was cancelled.', undefined, jobId);
        }
        failures += 1;
        delayMs = Math.min(maxPollMs, minPollMs * 2 ** failures);
        continue;
      }
      if (response.status === 404) {
        throw new FocusChatError('not_found', 'The job is unknown or has expired.', 404, jobId);
      }
      if (response.status !== 200) {
        if (response.status < 500 && response.status !== 429) {
          throw await errorFrom(response, jobId);
        }
        failures += 1;
        delayMs = retryAfterMs(response) ?? Math.min(maxPollMs, minPollMs * 2 ** failures);
        continue;
      }
      failures = 0;
      const status = (await response.json()) as JobStatus;
      if (status.status === 'completed') {
        return status.result;
      }
      if (status.status === 'failed') {
        throw new FocusChatError(status.error.code, status.error.message, undefined, jobId);
      }
      if (status.status === 'processing') {
        waitOptions.onProgress?.({ ...status, jobId });
        delayMs = pace(status.estimatedTime);
      }
    }
  }

  return {
    queue: (message, queueOptions) => queue(message, queueOptions),
    waitFor: (jobId, waitOptions) => waitFor(jobId, waitOptions),
    async send(message, sendOptions = {}) {
      const wait = deadlineGuard(sendOptions.signal);
      const job = await queue(message, sendOptions, wait);
      return waitFor(job.jobId, sendOptions, wait, job.estimatedTime);
    },
  };
}
