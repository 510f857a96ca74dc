import type { z } from 'zod';
import { invalidRequest } from '../errors.js';
import type { AppMiddleware } from './app-state.js';

/** Parses ctx.request.body with a zod schema into ctx.state.input, or a 400 naming the first problem. */
export function validateBody(schema: z.ZodType): AppMiddleware {
  return async function validateBodyMiddleware(ctx, next) {
    const body = (ctx.request as { body?: unknown }).body;
    const result = schema.safeParse(body);
    if (!result.success) {
      const [first] = result.error.issues;
      const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
      const message =
        first?.code === 'invalid_type' && first.path.length === 0
          ? 'The body must be a JSON object.'
          : `${where}${first?.message ?? 'invalid body'}`;
      throw invalidRequest(message);
    }
    ctx.state.input = result.data;
    await next();
  };
}
