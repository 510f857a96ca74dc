import { PassThrough } from 'node:stream';
import type { AppContext } from './app-state.js';

/** Where a producer writes its server-sent events, already formatted. */
export interface EventSink {
  write(text: string): void;
}

export interface EventStreamOptions {
  /** A comment line this often keeps proxies from cutting an idle stream. */
  heartbeatMs: number;
  /** Called once when the stream has ended, with how: the producer finished, or the client left first. */
  onEnd?: (how: 'finished' | 'abandoned') => void;
}

/**
 * Answers with `text/event-stream` as soon as the producer writes its first
 * event, so the first token goes out when the upstream sends it. A producer
 * that fails before writing anything fails the request as usual (a JSON
 * error with its status and Retry-After); after that it must end the stream
 * itself with an error event. The producer's signal aborts when the client
 * goes away, so the upstream call stops with it.
 */
export async function eventStream(
  ctx: AppContext,
  produce: (sink: EventSink, signal: AbortSignal) => Promise<void>,
  options: EventStreamOptions,
): Promise<void> {
  const body = new PassThrough();
  const controller = new AbortController();
  let opened: () => void = () => undefined;
  const first = new Promise<void>((resolve) => {
    opened = resolve;
  });
  const sink: EventSink = {
    write(text) {
      if (!body.writableEnded) {
        body.write(text);
      }
      opened();
    },
  };
  // Until the response exists, a client that leaves is seen on the request's socket.
  const onSocketClose = () => controller.abort();
  ctx.req.socket.once('close', onSocketClose);
  const running = produce(sink, controller.signal);
  try {
    await Promise.race([first, running]);
  } catch (error) {
    ctx.req.socket.off('close', onSocketClose);
    throw error;
  }
  ctx.req.socket.off('close', onSocketClose);

  ctx.status = 200;
  ctx.set('Content-Type', 'text/event-stream; charset=utf-8');
  // no-transform: no proxy may compress (and so buffer) it; X-Accel-Buffering for nginx-like ones.
  ctx.set('Cache-Control', 'no-cache, no-transform');
  ctx.set('X-Accel-Buffering', 'no');
  ctx.body = body;
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) {
      controller.abort();
    }
  });
  const heartbeat = setInterval(() => sink.write(': keep-alive\n\n'), options.heartbeatMs);
  heartbeat.unref();
  running
    .catch((error: unknown) => ctx.state.log.error({ err: error }, 'stream producer failed after its first event'))
    .finally(() => {
      clearInterval(heartbeat);
      options.onEnd?.(controller.signal.aborted ? 'abandoned' : 'finished');
      body.end();
    });
}
