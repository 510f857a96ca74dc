import type { ChatRequest } from '../chat/chat-request.js';
import type { SafetyCheck } from '../safety/safety-check.js';
import type { AppMiddleware } from './app-state.js';

/**
 * After validation, before any handler reaches the cache, the queue or the
 * LLM: a crisis message gets a verdict in ctx.state.safety, and every chat
 * handler answers it with the fixed safety answer instead.
 */
export function safetyGuard(options: { safety: SafetyCheck }): AppMiddleware {
  return async function safetyGuardMiddleware(ctx, next) {
    const input = ctx.state.input as ChatRequest;
    const verdict = await options.safety.check({
      message: input.message,
      history: input.history,
      locale: input.locale,
      acceptLanguage: ctx.get('Accept-Language') || undefined,
    });
    if (verdict) {
      ctx.state.safety = verdict;
    }
    await next();
  };
}
