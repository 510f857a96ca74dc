import { AppError, internalError, upstreamToAppError } from '../errors.js';
import { isUpstreamError } from '../llm/upstream-error.js';
import type { AppContext, AppMiddleware } from './app-state.js';

/**
 * Renders every error as `{error: {code, message}, requestId}`. Unknown errors
 * become a generic 500 (logged with their stack here, never sent).
 */
export function errorHandler(
  options: { onUnexpected?: (error: unknown, ctx: AppContext) => void } = {},
): AppMiddleware {
  return async function errorHandlerMiddleware(ctx, next) {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new AppError(404, 'not_found', `No route for ${ctx.method} ${ctx.path}.`);
      }
      if (ctx.status === 405 && ctx.body === undefined) {
        throw new AppError(405, 'method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}.`, {
          Allow: ctx.response.get('Allow'),
        });
      }
    } catch (error) {
      let appError: AppError;
      if (error instanceof AppError) {
        appError = error;
      } else if (isUpstreamError(error)) {
        appError = upstreamToAppError(error);
        ctx.state.log.warn({ provider: error.provider, kind: error.kind, status: error.status }, 'upstream failure');
      } else {
        appError = internalError();
        ctx.state.log.error({ err: error }, 'unhandled error');
        options.onUnexpected?.(error, ctx);
      }
      ctx.status = appError.status;
      for (const [name, value] of Object.entries(appError.headers)) {
        ctx.set(name, value);
      }
      ctx.body = {
        error: { code: appError.code, message: appError.message },
        requestId: ctx.state.requestId,
      };
    }
  };
}
