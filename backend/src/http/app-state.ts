import type { Context, Next, ParameterizedContext } from 'koa';
import type { SafetyVerdict } from '../safety/types.js';
import type { Logger } from '../telemetry/logger.js';

export interface Caller {
  /** Stable identity used for rate limits, ownership and active users. */
  id: string;
  kind: 'user' | 'ip';
}

/** Per-request values, set by middleware in the order app.ts composes them. */
export interface AppState {
  requestId: string;
  /** The root logger: inside the request its lines carry requestId (telemetry/log-context.ts). */
  log: Logger;
  caller: Caller;
  /** The client as its address identifies it, whoever the token says it is. */
  client: Caller;
  input: unknown;
  /** Set by handlers so the access log can tell cache hits apart. */
  cacheHit?: boolean;
  /** Set by the safety guard for a crisis message: the handler gives the fixed safety answer instead. */
  safety?: SafetyVerdict;
}

export type AppContext = ParameterizedContext<AppState, Context>;
export type AppMiddleware = (ctx: AppContext, next: Next) => Promise<void>;
