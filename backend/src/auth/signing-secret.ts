import type { UserStore } from '../db/user-store.js';
import { serviceUnavailable } from '../errors.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import type { SecretSource } from './device-tokens.js';

const SHARED_SECRET_NAME = 'device-tokens';
/** While PostgreSQL cannot give the shared secret, ask it again at most this often. */
const RETRY_MS = 2000;

/**
 * AUTH_JWT_SECRET when set. Otherwise one secret for the whole cluster, made
 * by whichever instance asks PostgreSQL first and read by the others: a
 * per-process random secret would make a token minted on one instance
 * worthless on the next. Loaded once, then held in memory, so PostgreSQL going
 * down later does not stop tokens from verifying.
 */
export function signingSecret(options: {
  configured: string | undefined;
  users: UserStore;
  tracker: DegradationTracker;
  now?: () => number;
}): SecretSource {
  const now = options.now ?? Date.now;
  if (options.configured !== undefined) {
    const secret = new TextEncoder().encode(options.configured);
    return async () => secret;
  }
  let loaded: Uint8Array | undefined;
  let loading: Promise<Uint8Array> | undefined;
  let failedAt = Number.NEGATIVE_INFINITY;
  return async () => {
    if (loaded) {
      return loaded;
    }
    if (now() - failedAt < RETRY_MS) {
      throw serviceUnavailable('Sign-in is unavailable for a moment. Please try again shortly.', 2);
    }
    loading ??= options.users.signingSecret(SHARED_SECRET_NAME).then(
      (secret) => {
        options.tracker.succeeded();
        loaded = new Uint8Array(secret);
        return loaded;
      },
      (error: unknown) => {
        options.tracker.failed(error);
        failedAt = now();
        loading = undefined;
        throw serviceUnavailable('Sign-in is unavailable for a moment. Please try again shortly.', 2);
      },
    );
    return loading;
  };
}
