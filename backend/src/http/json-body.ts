import getRawBody from 'raw-body';
import { AppError, invalidJson, payloadTooLarge, unsupportedMediaType } from '../errors.js';
import type { AppMiddleware } from './app-state.js';

/** Reads a JSON body into ctx.request.body: 415 for another type, 413 past the limit, 400 for bad JSON. */
export function jsonBody(options: { limitBytes: number }): AppMiddleware {
  return async function jsonBodyMiddleware(ctx, next) {
    if (!ctx.is('application/json')) {
      throw unsupportedMediaType();
    }
    let text: string;
    try {
      text = await getRawBody(ctx.req, {
        length: ctx.get('Content-Length') || undefined,
        limit: options.limitBytes,
        encoding: 'utf8',
      });
    } catch (error) {
      const type = (error as { type?: string }).type;
      if (type === 'entity.too.large') {
        throw payloadTooLarge(options.limitBytes);
      }
      // The client went away before or while sending its body: its fault, not ours (no 500, no stack).
      if (type === 'request.aborted' || type === 'stream.not.readable' || ctx.req.destroyed) {
        throw new AppError(400, 'request_aborted', 'The request body was not received in full.');
      }
      const status = (error as { status?: number }).status ?? 500;
      if (type === 'encoding.unsupported' || (status >= 400 && status < 500)) {
        throw new AppError(400, 'invalid_body', 'The request body could not be read.');
      }
      throw error;
    }
    try {
      (ctx.request as { body?: unknown }).body = JSON.parse(text);
    } catch {
      throw invalidJson();
    }
    await next();
  };
}
