import type { Authenticator } from '../auth/authenticator.js';
import { InvalidTokenError } from '../auth/device-tokens.js';
import { authRequired, invalidToken } from '../errors.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { AppMiddleware } from './app-state.js';

const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

/**
 * A Bearer token makes the caller its user; a bad one is a 401, never a silent
 * fall back to the client IP. Without a token the caller stays the client IP,
 * unless `required` (AUTH_REQUIRED) asks for a sign-in.
 */
export function authenticate(options: {
  authenticator: Authenticator;
  required: boolean;
  metrics: Metrics;
}): AppMiddleware {
  const { authenticator, required, metrics } = options;
  return async function authenticateMiddleware(ctx, next) {
    const header = ctx.get('Authorization');
    if (header === '') {
      if (required) {
        metrics.authFailures.inc({ reason: 'auth_required' });
        throw authRequired();
      }
      await next();
      return;
    }
    const token = BEARER.exec(header)?.[1];
    let userId: string;
    try {
      if (token === undefined) {
        throw new InvalidTokenError('not a bearer token');
      }
      userId = await authenticator.authenticate(token);
    } catch (error) {
      if (!(error instanceof InvalidTokenError)) {
        throw error;
      }
      metrics.authFailures.inc({ reason: 'invalid_token' });
      ctx.state.log.info({ reason: error.reason }, 'token refused');
      throw invalidToken();
    }
    ctx.state.caller = { kind: 'user', id: `user:${userId}` };
    await next();
  };
}
