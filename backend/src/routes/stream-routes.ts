import Router from '@koa/router';
import type { ChatRequest } from '../chat/chat-request.js';
import type { ChatService } from '../chat/chat-service.js';
import type { AppMiddleware, AppState } from '../http/app-state.js';
import { eventStream } from '../http/event-stream.js';
import { publicError } from '../queue/retry-policy.js';
import type { CallerKeys } from '../redis/caller-key.js';
import { safetyAnswer } from '../safety/index.js';
import type { Metrics } from '../telemetry/metrics.js';

export interface StreamRoutesOptions {
  chat: ChatService;
  /** The same guard as POST /api/chat. */
  guard: readonly AppMiddleware[];
  heartbeatMs: number;
  metrics: Metrics;
  /** Names the caller in Redis (job owners, counters), keyed: see redis/caller-key.ts. */
  callerKeys: CallerKeys;
}

const event = (name: string, data: unknown) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

/**
 * POST /api/chat/stream: the answer of POST /api/chat as server-sent events,
 * `delta` {text} as the upstream writes, then exactly one `done` (the same
 * fields as /api/chat) or `error` {error: {code, message}}. Anything that
 * fails before the first word is an ordinary JSON error with its status.
 */
export function streamRoutes(options: StreamRoutesOptions): Router<AppState> {
  const { chat, metrics } = options;
  const router = new Router<AppState>();
  router.post('/api/chat/stream', ...options.guard, async (ctx) => {
    const request = ctx.state.input as ChatRequest;
    const { safety } = ctx.state;
    let outcome: 'done' | 'error' = 'done';
    await eventStream(
      ctx,
      async (sink, signal) => {
        if (safety) {
          // A crisis message: the fixed answer in one piece, never the cache or the LLM.
          const answer = safetyAnswer(safety);
          sink.write(event('delta', { text: answer.response }));
          sink.write(event('done', { ...answer, requestId: ctx.state.requestId }));
          return;
        }
        let sent = false;
        try {
          const answer = await chat.answer(request, {
            caller: options.callerKeys.ref(ctx.state.caller),
            limitConcurrency: true,
            signal,
            onDelta: (text) => {
              sent = true;
              sink.write(event('delta', { text }));
            },
          });
          ctx.state.cacheHit = answer.cached;
          sink.write(event('done', { ...answer, requestId: ctx.state.requestId }));
        } catch (error) {
          if (!sent) {
            throw error;
          }
          outcome = 'error';
          sink.write(event('error', { error: publicError(error), requestId: ctx.state.requestId }));
        }
      },
      {
        heartbeatMs: options.heartbeatMs,
        onEnd: (how) =>
          metrics.streams.inc({ route: '/api/chat/stream', outcome: how === 'abandoned' ? 'abandoned' : outcome }),
      },
    );
  });
  return router;
}
