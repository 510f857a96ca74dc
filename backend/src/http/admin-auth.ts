import { createHash, timingSafeEqual } from 'node:crypto';
import { unauthorized } from '../errors.js';
import type { AppMiddleware } from './app-state.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Guards operator pages with `Authorization: Bearer <ADMIN_TOKEN>` when a token
 * is configured; without one they are open (they are not on the public entry).
 * Both sides are hashed first, so the comparison is constant-time whatever
 * the length of what the client sent.
 */
export function adminAuth(options: { token: string | undefined }): AppMiddleware {
  const expected = options.token === undefined ? undefined : digest(options.token);
  return async function adminAuthMiddleware(ctx, next) {
    if (expected) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('Authorization'));
      if (!match?.[1] || !timingSafeEqual(digest(match[1]), expected)) {
        throw unauthorized('This page needs the admin token: Authorization: Bearer <ADMIN_TOKEN>.');
      }
    }
    await next();
  };
}
