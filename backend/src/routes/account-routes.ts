import Router from '@koa/router';
import type { AccountService } from '../account/account-service.js';
import { authRequired } from '../errors.js';
import type { AppContext, AppMiddleware, AppState } from '../http/app-state.js';

export interface Usage {
  tokensToday: number;
  budget: number;
  requestsThisMinute: number;
}

export interface AccountRoutesOptions {
  accounts: AccountService;
  /** Bearer token → ctx.state.caller. */
  authenticate: AppMiddleware;
  /** Per-IP limit on sign-ups. */
  signupGuard: AppMiddleware;
  usage(userId: string): Promise<Usage>;
}

/** The signed-in user's id; these routes have no anonymous meaning, whatever AUTH_REQUIRED says. */
function userIdOf(ctx: AppContext): string {
  const { caller } = ctx.state;
  if (caller.kind !== 'user') {
    throw authRequired();
  }
  return caller.id.slice('user:'.length);
}

/** POST /api/auth/device, and the user's own data: GET /api/me, GET /api/me/export, DELETE /api/me. */
export function accountRoutes(options: AccountRoutesOptions): Router<AppState> {
  const { accounts, authenticate } = options;
  const router = new Router<AppState>();

  router.post('/api/auth/device', options.signupGuard, async (ctx) => {
    ctx.status = 201;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await accounts.signUp();
  });

  router.get('/api/me', authenticate, async (ctx) => {
    const userId = userIdOf(ctx);
    const [account, usage] = await Promise.all([accounts.account(userId), options.usage(userId)]);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { userId: account.userId, createdAt: account.createdAt, usage };
  });

  router.get('/api/me/export', authenticate, async (ctx) => {
    const userId = userIdOf(ctx);
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Content-Disposition', 'attachment; filename="focus-export.json"');
    ctx.body = { exportedAt: new Date().toISOString(), ...(await accounts.export(userId)) };
  });

  router.delete('/api/me', authenticate, async (ctx) => {
    await accounts.delete(userIdOf(ctx));
    // The user is gone: this request's own record (active users, stats) must not bring them back.
    ctx.state.caller = ctx.state.client;
    ctx.status = 204;
  });

  return router;
}
