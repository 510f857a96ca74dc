/**
 * The app's side of the chat queue: queue a message, follow it until the
 * answer is ready, and lose nothing on the way. Dependency-free (fetch,
 * timers, AbortSignal), so it runs in React Native, browsers and Node 20.
 *
 * - A POST that fails on the way (connection error, no answer within
 *   requestTimeoutMs, 502, 503, 504: e.g. the instance died under it) is sent
 *   again with the same Idempotency-Key, so the backend queues it once.
 * - 429 and 503 are retried after their Retry-After.
 * - Polls are paced by the job's estimatedTime (a third of it, within
 *   bounds): rare far back in line, frequent near the front; they back off on errors.
 * - signIn() makes a device account and sends its token from then on; the
 *   app keeps the token (secure storage) and passes it back as `token`.
 * - stream() shows the answer word by word (POST /api/chat/stream over fetch
 *   streams: browsers, React Native's expo/fetch, Node) and falls back to the
 *   queue where streaming is not available or the stream cannot start.
 */

// The server's own response types (erased by the build): the client cannot drift from them.
import type { ChatReply, DeviceAccount, JobStatusBody, QueuedJob } from '../routes/responses.js';
// The two small helpers shared with the server (backend/src/shared: no Node API, bundled into the page).
import { parseRetryAfterMs } from '../shared/retry-after.js';
import { sleep } from '../shared/sleep.js';

export type { ChatReply, DeviceAccount, QueuedJob };

export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

export type JobStatus = JobStatusBody;
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
  /** The token of an earlier signIn(), restored from the app's storage. */
  token?: string;
  /** Extra headers on every call. */
  headers?: () => Record<string, string>;
  fetch?: typeof fetch;
  /** Gives up after this long in total (POST retries and polls), ms. Default 5 minutes. */
  timeoutMs?: number;
  /** Attempts of the POST on connection errors and 5xx. Default 6. */
  maxPostAttempts?: number;
  /** One HTTP call (POST or poll, body included) gets this long before it counts as failed, ms. Default 15 000. */
  requestTimeoutMs?: number;
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

export interface StreamOptions extends SendOptions {
  /** Each piece of the answer as it arrives. */
  onDelta?: (text: string) => void;
}

export interface FocusChatClient {
  /** Creates a device account; its token goes on every later call. Keep the result to restore it. */
  signIn(): Promise<DeviceAccount>;
  /** Queues the message and resolves with the answer, or rejects with a FocusChatError. */
  send(message: string, options?: SendOptions): Promise<ChatReply>;
  /**
   * Streams the answer through onDelta and resolves with the whole of it. Where
   * a stream cannot start (no stream support, a network error or a 429/5xx
   * before the first word) it sends the message through the queue instead. A
   * stream cut after its first words rejects (code upstream_interrupted or
   * network_error): what was shown is not the whole answer.
   */
  stream(message: string, options?: StreamOptions): Promise<ChatReply>;
  /** The two steps on their own, for apps that keep a jobId across restarts. */
  queue(message: string, options?: Omit<SendOptions, 'onProgress'> & { idempotencyKey?: string }): Promise<QueuedJob>;
  waitFor(jobId: string, options?: Omit<SendOptions, 'history'>): Promise<ChatReply>;
}

const RETRYABLE_POST = new Set([429, 502, 503, 504]);

/** A whole HTTP exchange: status, Retry-After and the JSON body (undefined when not JSON). */
interface Answer {
  status: number;
  retryAfterMs: number | undefined;
  body: unknown;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
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

function errorFrom(answer: Answer, jobId?: string): FocusChatError {
  const body = answer.body as { error?: { code?: string; message?: string } } | undefined;
  return new FocusChatError(
    body?.error?.code ?? `http_${answer.status}`,
    body?.error?.message ?? `The backend answered ${answer.status}.`,
    answer.status,
    jobId,
  );
}

export function createFocusChatClient(options: FocusChatClientOptions): FocusChatClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const timeoutMs = options.timeoutMs ?? 5 * 60_000;
  const maxPostAttempts = options.maxPostAttempts ?? 6;
  const requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
  const minPollMs = options.minPollMs ?? 500;
  const maxPollMs = options.maxPollMs ?? 10_000;
  const newKey = options.newKey ?? (() => globalThis.crypto.randomUUID());
  let token = options.token;
  const headers = () => ({ ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers?.() });

  /** A deadline shared by every step of one call: waits past it are a timeout error, calls are cut at it. */
  function deadlineGuard(signal: AbortSignal | undefined) {
    const deadline = Date.now() + timeoutMs;
    /** Waits ms; past the deadline, throws `instead` (the error that asked for the wait) or a timeout. */
    const wait = async (ms: number, instead?: FocusChatError) => {
      if (Date.now() + ms > deadline) {
        throw instead ?? new FocusChatError('timeout', 'No answer in time. Please try again.');
      }
      await sleep(ms, signal);
      if (signal?.aborted) {
        throw new FocusChatError('aborted', 'The request was cancelled.');
      }
    };
    const call = (url: string, init: RequestInit) =>
      exchange(doFetch, url, init, Math.max(1, Math.min(requestTimeoutMs, deadline - Date.now())), signal);
    return { wait, call };
  }

  async function queue(
    message: string,
    queueOptions: Omit<SendOptions, 'onProgress'> & { idempotencyKey?: string } = {},
    { wait, call } = deadlineGuard(queueOptions.signal),
  ): Promise<QueuedJob> {
    const key = queueOptions.idempotencyKey ?? newKey();
    const body = JSON.stringify({ message, ...(queueOptions.history ? { history: queueOptions.history } : {}) });
    let lastError: FocusChatError = new FocusChatError('network_error', 'Cannot reach the backend.');
    for (let attempt = 1; attempt <= maxPostAttempts; attempt += 1) {
      const backoffMs = Math.min(500 * 2 ** (attempt - 1), 8000);
      // No wait after the last attempt: its error is the answer.
      const again = (ms: number) => (attempt < maxPostAttempts ? wait(ms, lastError) : undefined);
      let answer: Answer;
      try {
        answer = await call(`${baseUrl}/api/chat/queue`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key, ...headers() },
          body,
        });
      } catch (error) {
        if (queueOptions.signal?.aborted) {
          throw new FocusChatError('aborted', 'The request was cancelled.');
        }
        lastError = new FocusChatError('network_error', `Cannot reach the backend (${(error as Error).message}).`);
        await again(backoffMs);
        continue;
      }
      if (answer.status === 202) {
        return answer.body as QueuedJob;
      }
      lastError = errorFrom(answer);
      if (!RETRYABLE_POST.has(answer.status)) {
        throw lastError;
      }
      await again(answer.retryAfterMs ?? backoffMs);
    }
    throw lastError;
  }

  async function waitFor(
    jobId: string,
    waitOptions: Omit<SendOptions, 'history'> = {},
    { wait, call } = deadlineGuard(waitOptions.signal),
    firstEstimate?: number,
  ): Promise<ChatReply> {
    const pace = (estimatedSeconds: number) => Math.min(maxPollMs, Math.max(minPollMs, (estimatedSeconds * 1000) / 3));
    let delayMs = firstEstimate === undefined ? minPollMs : pace(firstEstimate);
    let failures = 0;
    for (;;) {
      await wait(delayMs);
      let answer: Answer;
      try {
        answer = await call(`${baseUrl}/api/chat/status/${encodeURIComponent(jobId)}`, {
          headers: headers(),
        });
      } catch {
        if (waitOptions.signal?.aborted) {
          throw new FocusChatError('aborted', 'The request was cancelled.', undefined, jobId);
        }
        failures += 1;
        delayMs = Math.min(maxPollMs, minPollMs * 2 ** failures);
        continue;
      }
      if (answer.status === 404) {
        throw new FocusChatError('not_found', 'The job is unknown or has expired.', 404, jobId);
      }
      if (answer.status !== 200) {
        if (answer.status < 500 && answer.status !== 429) {
          throw errorFrom(answer, jobId);
        }
        failures += 1;
        delayMs = answer.retryAfterMs ?? Math.min(maxPollMs, minPollMs * 2 ** failures);
        continue;
      }
      failures = 0;
      // Not JSON (a proxy's page?): poll again at the same pace.
      const status = answer.body as JobStatus | undefined;
      if (status?.status === 'completed') {
        return status.result;
      }
      if (status?.status === 'failed') {
        throw new FocusChatError(status.error.code, status.error.message, undefined, jobId);
      }
      if (status?.status === 'processing') {
        waitOptions.onProgress?.({ ...status, jobId });
        delayMs = pace(status.estimatedTime);
      }
    }
  }

  /** Reads POST /api/chat/stream; undefined when it could not start and the queue should answer instead. */
  async function streamed(message: string, streamOptions: StreamOptions): Promise<ChatReply | undefined> {
    const controller = new AbortController();
    const abort = () => controller.abort();
    streamOptions.signal?.addEventListener('abort', abort, { once: true });
    // Until the first event, a silent backend is cut after requestTimeoutMs (then the queue takes over).
    const startTimer = setTimeout(abort, requestTimeoutMs);
    let started = false;
    try {
      let response: Response;
      try {
        response = await doFetch(`${baseUrl}/api/chat/stream`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers() },
          body: JSON.stringify({ message, ...(streamOptions.history ? { history: streamOptions.history } : {}) }),
          signal: controller.signal,
        });
      } catch {
        if (streamOptions.signal?.aborted) {
          throw new FocusChatError('aborted', 'The request was cancelled.');
        }
        return undefined;
      }
      const reader = response.body?.getReader?.();
      if (!response.ok || !reader) {
        void response.body?.cancel().catch(() => undefined);
        // Bad input or credentials would fail the queue the same way: say so now.
        if (response.status >= 400 && response.status < 500 && response.status !== 404 && response.status !== 429) {
          throw errorFrom({
            status: response.status,
            retryAfterMs: undefined,
            body: parseJson(await response.text().catch(() => '')),
          });
        }
        return undefined;
      }
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch {
          if (streamOptions.signal?.aborted) {
            throw new FocusChatError('aborted', 'The request was cancelled.');
          }
          if (!started) {
            return undefined;
          }
          throw new FocusChatError('network_error', 'The connection dropped during the answer.');
        }
        if (chunk.done) {
          if (!started) {
            return undefined;
          }
          throw new FocusChatError('network_error', 'The answer ended before it was complete.');
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const name = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!name || data === undefined) {
            continue;
          }
          started = true;
          clearTimeout(startTimer);
          const payload = parseJson(data) as
            | { text?: string }
            | (ChatReply & { requestId?: string })
            | { error?: { code?: string; message?: string } };
          if (name === 'delta') {
            streamOptions.onDelta?.((payload as { text?: string }).text ?? '');
          } else if (name === 'done') {
            const { requestId: _requestId, ...reply } = payload as ChatReply & { requestId?: string };
            return reply as ChatReply;
          } else if (name === 'error') {
            const { error } = payload as { error?: { code?: string; message?: string } };
            throw new FocusChatError(
              error?.code ?? 'upstream_interrupted',
              error?.message ?? 'The answer was cut off.',
            );
          }
        }
      }
    } finally {
      clearTimeout(startTimer);
      streamOptions.signal?.removeEventListener('abort', abort);
    }
  }

  return {
    async signIn() {
      const answer = await deadlineGuard(undefined).call(`${baseUrl}/api/auth/device`, { method: 'POST' });
      if (answer.status !== 201) {
        throw errorFrom(answer);
      }
      const account = answer.body as DeviceAccount;
      token = account.token;
      return account;
    },
    queue: (message, queueOptions) => queue(message, queueOptions),
    waitFor: (jobId, waitOptions) => waitFor(jobId, waitOptions),
    async send(message, sendOptions = {}) {
      const guard = deadlineGuard(sendOptions.signal);
      const job = await queue(message, sendOptions, guard);
      return waitFor(job.jobId, sendOptions, guard, job.estimatedTime);
    },
    async stream(message, streamOptions = {}) {
      const reply = await streamed(message, streamOptions);
      if (reply) {
        return reply;
      }
      const guard = deadlineGuard(streamOptions.signal);
      const job = await queue(message, streamOptions, guard);
      const answer = await waitFor(job.jobId, streamOptions, guard, job.estimatedTime);
      streamOptions.onDelta?.(answer.response);
      return answer;
    },
  };
}
