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
import type { ChatReply, DeviceAccount, QueuedJob } from '../routes/responses.js';
import { streamAnswer } from './answer-stream.js';
import type { QueueOptions, SendOptions, StreamOptions, WaitOptions } from './chat-types.js';
import { type ClientSettings, deadlineGuard, errorFrom } from './http-calls.js';
import { queueJob, waitForJob } from './job-calls.js';

export type { ChatTurn, JobProgress, JobStatus, SendOptions, StreamOptions } from './chat-types.js';
export { FocusChatError } from './focus-chat-error.js';
export type { ChatReply, DeviceAccount, QueuedJob };

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
  queue(message: string, options?: QueueOptions): Promise<QueuedJob>;
  waitFor(jobId: string, options?: WaitOptions): Promise<ChatReply>;
}

export function createFocusChatClient(options: FocusChatClientOptions): FocusChatClient {
  let token = options.token;
  const settings = clientSettings(options, () => token);
  /** Queues the message and follows the job, under one deadline. */
  const viaQueue = async (message: string, sendOptions: SendOptions) => {
    const guard = deadlineGuard(settings, sendOptions.signal);
    const job = await queueJob(settings, message, sendOptions, guard);
    return waitForJob(settings, job.jobId, sendOptions, guard, job.estimatedTime);
  };
  return {
    async signIn() {
      const answer = await deadlineGuard(settings, undefined).call(`${settings.baseUrl}/api/auth/device`, {
        method: 'POST',
      });
      if (answer.status !== 201) {
        throw errorFrom(answer);
      }
      const account = answer.body as DeviceAccount;
      token = account.token;
      return account;
    },
    queue: (message, queueOptions = {}) =>
      queueJob(settings, message, queueOptions, deadlineGuard(settings, queueOptions.signal)),
    waitFor: (jobId, waitOptions = {}) =>
      waitForJob(settings, jobId, waitOptions, deadlineGuard(settings, waitOptions.signal)),
    send: (message, sendOptions = {}) => viaQueue(message, sendOptions),
    async stream(message, streamOptions = {}) {
      const reply = await streamAnswer(settings, message, streamOptions);
      if (reply) {
        return reply;
      }
      const answer = await viaQueue(message, streamOptions);
      streamOptions.onDelta?.(answer.response);
      return answer;
    },
  };
}

function clientSettings(options: FocusChatClientOptions, token: () => string | undefined): ClientSettings {
  return {
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    doFetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    timeoutMs: options.timeoutMs ?? 5 * 60_000,
    maxPostAttempts: options.maxPostAttempts ?? 6,
    requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
    minPollMs: options.minPollMs ?? 500,
    maxPollMs: options.maxPollMs ?? 10_000,
    newKey: options.newKey ?? (() => globalThis.crypto.randomUUID()),
    headers: () => {
      const current = token();
      return { ...(current ? { authorization: `Bearer ${current}` } : {}), ...options.headers?.() };
    },
  };
}
