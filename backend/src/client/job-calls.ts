import type { ChatReply, QueuedJob } from '../routes/responses.js';
import type { JobStatus, QueueOptions, WaitOptions } from './chat-types.js';
import { cancelled, FocusChatError } from './focus-chat-error.js';
import { type Answer, type ClientSettings, type DeadlineGuard, errorFrom } from './http-calls.js';

const RETRYABLE_POST = new Set([429, 502, 503, 504]);

/**
 * POST /api/chat/queue until the backend takes the job. A POST that fails on
 * the way (connection error, timeout, 502, 503, 504) is sent again with the
 * same Idempotency-Key, so the backend queues it once; 429 and 503 wait their Retry-After.
 */
export async function queueJob(
  settings: ClientSettings,
  message: string,
  options: QueueOptions,
  guard: DeadlineGuard,
): Promise<QueuedJob> {
  const key = options.idempotencyKey ?? settings.newKey();
  const body = JSON.stringify({ message, ...(options.history ? { history: options.history } : {}) });
  let lastError: FocusChatError = new FocusChatError('network_error', 'Cannot reach the backend.');
  for (let attempt = 1; attempt <= settings.maxPostAttempts; attempt += 1) {
    const outcome = await postOnce(settings, guard, { key, body, signal: options.signal });
    if ('job' in outcome) {
      return outcome.job;
    }
    lastError = outcome.error;
    // No wait after the last attempt: its error is the answer.
    if (attempt < settings.maxPostAttempts) {
      await guard.wait(outcome.retryAfterMs ?? Math.min(500 * 2 ** (attempt - 1), 8000), lastError);
    }
  }
  throw lastError;
}

/** One POST: the job, or the error worth another attempt; throws when another attempt cannot help. */
async function postOnce(
  settings: ClientSettings,
  guard: DeadlineGuard,
  post: { key: string; body: string; signal: AbortSignal | undefined },
): Promise<{ job: QueuedJob } | { error: FocusChatError; retryAfterMs?: number }> {
  let answer: Answer;
  try {
    answer = await guard.call(`${settings.baseUrl}/api/chat/queue`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': post.key, ...settings.headers() },
      body: post.body,
    });
  } catch (error) {
    if (post.signal?.aborted) {
      throw cancelled();
    }
    return { error: new FocusChatError('network_error', `Cannot reach the backend (${(error as Error).message}).`) };
  }
  if (answer.status === 202) {
    return { job: answer.body as QueuedJob };
  }
  const error = errorFrom(answer);
  if (!RETRYABLE_POST.has(answer.status)) {
    throw error;
  }
  return { error, retryAfterMs: answer.retryAfterMs };
}

/**
 * Polls the job until it completes or fails. Polls are paced by its
 * estimatedTime (a third of it, within bounds): rare far back in line,
 * frequent near the front; they back off on errors.
 */
export async function waitForJob(
  settings: ClientSettings,
  jobId: string,
  options: WaitOptions,
  guard: DeadlineGuard,
  firstEstimate?: number,
): Promise<ChatReply> {
  const { minPollMs, maxPollMs } = settings;
  const pace = (estimatedSeconds: number) => Math.min(maxPollMs, Math.max(minPollMs, (estimatedSeconds * 1000) / 3));
  let delayMs = firstEstimate === undefined ? minPollMs : pace(firstEstimate);
  let failures = 0;
  for (;;) {
    await guard.wait(delayMs);
    const poll = await pollOnce(settings, guard, jobId, options.signal);
    if (!poll.ok) {
      failures += 1;
      delayMs = poll.retryAfterMs ?? Math.min(maxPollMs, minPollMs * 2 ** failures);
      continue;
    }
    failures = 0;
    // Not JSON (a proxy's page?): poll again at the same pace.
    const { status } = poll;
    if (status?.status === 'completed') {
      return status.result;
    }
    if (status?.status === 'failed') {
      throw new FocusChatError(status.error.code, status.error.message, undefined, jobId);
    }
    if (status?.status === 'processing') {
      options.onProgress?.({ ...status, jobId });
      delayMs = pace(status.estimatedTime);
    }
  }
}

/** One poll: the job's status, or a failure worth polling again after; throws when polling cannot help. */
async function pollOnce(
  settings: ClientSettings,
  guard: DeadlineGuard,
  jobId: string,
  signal: AbortSignal | undefined,
): Promise<{ ok: true; status: JobStatus | undefined } | { ok: false; retryAfterMs: number | undefined }> {
  let answer: Answer;
  try {
    answer = await guard.call(`${settings.baseUrl}/api/chat/status/${encodeURIComponent(jobId)}`, {
      headers: settings.headers(),
    });
  } catch {
    if (signal?.aborted) {
      throw cancelled(jobId);
    }
    return { ok: false, retryAfterMs: undefined };
  }
  if (answer.status === 404) {
    throw new FocusChatError('not_found', 'The job is unknown or has expired.', 404, jobId);
  }
  if (answer.status !== 200) {
    if (answer.status < 500 && answer.status !== 429) {
      throw errorFrom(answer, jobId);
    }
    return { ok: false, retryAfterMs: answer.retryAfterMs };
  }
  return { ok: true, status: answer.body as JobStatus | undefined };
}
