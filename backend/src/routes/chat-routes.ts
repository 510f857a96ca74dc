import Router from '@koa/router';
import type { ChatRequest } from '../chat/chat-request.js';
import type { ChatService } from '../chat/chat-service.js';
import type { AppMiddleware, AppState } from '../http/app-state.js';
import type { CallerKeys } from '../redis/caller-key.js';
import { safetyAnswer } from '../safety/index.js';

export interface ChatRoutesOptions {
  chat: ChatService;
  /** The caller's token, per-caller rate limit, body parsing, validation and the safety check, in that order. */
  guard: readonly AppMiddleware[];
  /** Names the caller in Redis (job owners, counters), keyed: see redis/caller-key.ts. */
  callerKeys: CallerKeys;
}

export function chatRoutes(options: ChatRoutesOptions): Router<AppState> {
  const router = new Router<AppState>();
  router.post('/api/chat', ...options.guard, async (ctx) => {
    if (ctx.state.safety) {
      // A crisis message: the fixed answer, never the cache or the LLM, and not kept by any proxy.
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { ...safetyAnswer(ctx.state.safety), requestId: ctx.state.requestId };
      return;
    }
    const answer = await options.chat.answer(ctx.state.input as ChatRequest, {
      caller: options.callerKeys.ref(ctx.state.caller),
      limitConcurrency: true,
    });
    ctx.state.cacheHit = answer.cached;
    ctx.body = { ...answer, requestId: ctx.state.requestId };
  });
  return router;
}
