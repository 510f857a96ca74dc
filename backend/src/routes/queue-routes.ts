import Router from '@koa/router';
import type { ChatRequest } from '../chat/chat-request.js';
import { invalidRequest } from '../errors.js';
import type { AppMiddleware, AppState } from '../http/app-state.js';
import type { ChatQueue } from '../queue/chat-queue.js';
import { parseIdempotencyKey } from '../queue/idempotency.js';
import { isJobId } from '../queue/queue-keys.js';
import { safetyAnswer } from '../safety/index.js';
import type { JobStatusBody, QueuedJob } from './responses.js';

export interface QueueRoutesOptions {
  queue: ChatQueue;
  /** The same guard as POST /api/chat: per-caller rate limit, JSON body, validation, safety check. */
  guard: readonly AppMiddleware[];
  /** The caller's token, then a cheap per-instance limit on status polls. */
  pollGuard: readonly AppMiddleware[];
}

function queuedMessage(position: number, estimatedTime: number): string {
  if (estimatedTime === 0) {
    return 'Your answer is ready: fetch it from the status URL.';
  }
  if (position === 0) {
    return `Your message is being answered; it should be ready in about ${estimatedTime} s.`;
  }
  return `Your message is number ${position} in line; the answer should be ready in about ${estimatedTime} s.`;
}

/**
 * POST /api/chat/queue and GET /api/chat/status/:jobId. Polls are not counted
 * against the chat limit (a Redis round trip, and the caller's chat budget):
 * a per-instance in-memory limit bounds them instead.
 */
export function queueRoutes(options: QueueRoutesOptions): Router<AppState> {
  const { queue } = options;
  const router = new Router<AppState>();

  router.post('/api/chat/queue', ...options.guard, async (ctx) => {
    const idempotencyKey = parseIdempotencyKey(ctx.get('Idempotency-Key') || undefined);
    // A crisis message does not wait in line: its job is complete, with the safety answer, before the 202.
    const { jobId, position, estimatedTime, replayed } = ctx.state.safety
      ? await queue.completeNow(ctx.state.caller.id, safetyAnswer(ctx.state.safety))
      : await queue.enqueue({
          callerId: ctx.state.caller.id,
          request: ctx.state.input as ChatRequest,
          requestId: ctx.state.requestId,
          idempotencyKey,
        });
    ctx.status = 202;
    ctx.set('Location', `/api/chat/status/${jobId}`);
    if (replayed) {
      ctx.set('Idempotent-Replayed', 'true');
    }
    ctx.body = {
      jobId,
      status: 'queued',
      position,
      estimatedTime,
      message: queuedMessage(position, estimatedTime),
    } satisfies QueuedJob;
  });

  router.get('/api/chat/status/:jobId', ...options.pollGuard, async (ctx) => {
    const { jobId = '' } = ctx.params;
    if (!isJobId(jobId)) {
      throw invalidRequest('jobId must be an id returned by POST /api/chat/queue.');
    }
    const status = await queue.status(ctx.state.caller.id, jobId);
    ctx.set('Cache-Control', 'no-store');
    if (!status) {
      // Unknown, expired and someone else's jobs look exactly alike.
      ctx.status = 404;
      ctx.body = { status: 'not_found' } satisfies JobStatusBody;
      return;
    }
    ctx.body = status satisfies JobStatusBody;
  });

  return router;
}
