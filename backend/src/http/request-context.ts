import { randomUUID } from 'node:crypto';
import { runWithRequestId } from '../telemetry/log-context.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { AppMiddleware } from './app-state.js';

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;
/** Probed every second by the proxy, the runner and Prometheus: logged at debug, not info. */
const PROBE_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** The route template (`/api/chat/status/:jobId`), never the raw URL, so labels stay bounded. */
export function routeTemplate(ctx: Parameters<AppMiddleware>[0]): string {
  const matched = (ctx as { _matchedRoute?: string | RegExp })._matchedRoute;
  return typeof matched === 'string' ? matched : 'unmatched';
}

/**
 * First middleware: request id and instance id on every response, one access
 * log line and the HTTP metrics for every request, whatever happens inside.
 */
export function requestContext(options: {
  instanceId: string;
  logger: Logger;
  metrics: Metrics;
  /**
   * The caller as logs show it: keyed (LOG_CALLER_SALT, else random per process),
   * so an IPv4 address cannot be recovered by hashing all 2^32 of them.
   */
  callerTag: (callerId: string) => string;
}): AppMiddleware {
  const { instanceId, logger, metrics, callerTag } = options;
  return function requestContextMiddleware(ctx, next) {
    const started = process.hrtime.bigint();
    const incoming = ctx.get('X-Request-Id');
    const requestId = SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    // The root logger: its lines carry the request id from the log context (telemetry/log-context.ts).
    ctx.state.log = logger;
    ctx.set('X-Request-Id', requestId);
    ctx.set('X-Instance-Id', instanceId);
    return runWithRequestId(requestId, async () => {
      try {
        await next();
      } finally {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const route = routeTemplate(ctx);
        metrics.httpRequests.inc({ method: ctx.method, route, status: String(ctx.status) });
        metrics.httpDuration.observe({ method: ctx.method, route }, seconds);
        const level = PROBE_ROUTES.has(route) ? 'debug' : ctx.status >= 500 ? 'error' : 'info';
        ctx.state.log[level](
          {
            method: ctx.method,
            route,
            status: ctx.status,
            latencyMs: Math.round(seconds * 1e4) / 10,
            cacheHit: ctx.state.cacheHit,
            // That the safety answer was given, never why: the message is health data.
            safety: ctx.state.safety ? true : undefined,
            caller: ctx.state.caller ? callerTag(ctx.state.caller.id) : undefined,
          },
          'request',
        );
      }
    });
  };
}
