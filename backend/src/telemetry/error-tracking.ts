import type { Logger } from './logger.js';

/** Where unexpected errors go besides the log: Sentry when SENTRY_DSN is set, else nowhere. */
export interface ErrorTracker {
  /** An error nobody handled (a 500, or one that escaped the error middleware). */
  capture(error: unknown, context: { requestId?: string; route?: string }): void;
  /** Sends what is pending (at shutdown). */
  close(): Promise<void>;
}

const FLUSH_TIMEOUT_MS = 2000;

/** What of an event may leave the process: the error, its stack, the request id and where. Never user text. */
export function scrubEvent<E extends Record<string, unknown>>(event: E): E {
  const { request: _request, user: _user, breadcrumbs: _breadcrumbs, extra, contexts: _contexts, ...kept } = event;
  const requestId = (extra as Record<string, unknown> | undefined)?.requestId;
  return { ...kept, ...(requestId === undefined ? {} : { extra: { requestId } }) } as unknown as E;
}

/**
 * Sentry (the seed's error tracking), optional: loaded only when a DSN is
 * given, with no default integrations (no request bodies, headers, console or
 * breadcrumbs captured) and every event scrubbed before it leaves.
 */
export async function createErrorTracker(options: {
  dsn: string | undefined;
  instanceId: string;
  environment: string;
  logger: Logger;
}): Promise<ErrorTracker> {
  if (!options.dsn) {
    return { capture: () => undefined, close: async () => undefined };
  }
  const Sentry = await import('@sentry/node');
  const client = Sentry.init({
    dsn: options.dsn,
    environment: options.environment,
    serverName: options.instanceId,
    defaultIntegrations: false,
    tracesSampleRate: 0,
    beforeSend: (event) => scrubEvent(event as unknown as Record<string, unknown>) as unknown as typeof event,
  });
  options.logger.info('error tracking on (SENTRY_DSN)');
  return {
    capture(error, context) {
      Sentry.withScope((scope) => {
        scope.setTag('instance', options.instanceId);
        if (context.route) {
          scope.setTag('route', context.route);
        }
        if (context.requestId) {
          scope.setExtra('requestId', context.requestId);
        }
        Sentry.captureException(error);
      });
    },
    async close() {
      await Promise.resolve(client?.close(FLUSH_TIMEOUT_MS)).catch(() => undefined);
    },
  };
}
