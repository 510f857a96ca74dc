import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { UserStore } from '../db/user-store.js';
import type { CallerKeys } from '../redis/caller-key.js';
import type { DegradationTracker } from '../telemetry/degradation.js';
import { DEVICE_TOKEN_ISSUER, type DeviceTokens, InvalidTokenError, joseReason } from './device-tokens.js';

/**
 * Turns a bearer token into a user id, or refuses it. Nothing here queries
 * PostgreSQL per request: a token's revocation state and an external
 * identity's user id are kept in Redis and read from PostgreSQL only when
 * Redis has not seen them yet.
 */

/** Larger than any token we or a sane provider mint; refused before parsing. */
const MAX_TOKEN_CHARS = 4096;
/** Redis remembers a user's token version / an external mapping this long after it was last loaded. */
const CACHE_TTL_SECONDS = 86_400;
/** A deleted or unknown user's tokens are refused from memory for this long, sparing PostgreSQL a flood. */
const NEGATIVE_TTL_MS = 5 * 60_000;
const NEGATIVE_MAX_ENTRIES = 10_000;
// The asymmetric algorithms identity providers sign with; never HS* (a public key would become a secret) or none.
const EXTERNAL_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'];

export interface ExternalProvider {
  jwksUrl: string;
  issuer: string;
  audience: string;
}

export interface AuthenticatorOptions {
  deviceTokens: DeviceTokens;
  external?: ExternalProvider;
  users: UserStore;
  redis: Redis;
  prefix: string;
  redisTracker: DegradationTracker;
  postgresTracker: DegradationTracker;
  /** A user's token version is kept under their Redis name, never their id. */
  callerKeys: CallerKeys;
  now?: () => number;
}

export interface Authenticator {
  /** The user id behind a valid token; InvalidTokenError for a bad one. */
  authenticate(token: string): Promise<string>;
  /** After an account is deleted: its tokens are refused everywhere (Redis) and here at once (memory). */
  forget(userId: string, identityHashes: readonly string[]): Promise<void>;
}

/** What identifies an external user: issuer and subject, hashed so neither is stored. */
export const externalIdentityHash = (issuer: string, subject: string) =>
  createHash('sha256').update(`${issuer}\n${subject}`).digest('hex');

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const { deviceTokens, users, redis, prefix, redisTracker, postgresTracker } = options;
  const now = options.now ?? Date.now;
  const versionKey = (userId: string) => `${prefix}auth:ver:${options.callerKeys.hash(`user:${userId}`)}`;
  const externalKey = (identityHash: string) => `${prefix}auth:ext:${identityHash}`;
  const gone = new Map<string, number>();
  // jose fetches the provider's keys once, caches them and refetches only on an unknown key id (with a cooldown).
  const jwks = options.external && createRemoteJWKSet(new URL(options.external.jwksUrl));

  function markGone(userId: string) {
    if (gone.size >= NEGATIVE_MAX_ENTRIES) {
      gone.delete(gone.keys().next().value as string);
    }
    gone.set(userId, now() + NEGATIVE_TTL_MS);
  }

  function isGone(userId: string): boolean {
    const until = gone.get(userId);
    if (until === undefined) {
      return false;
    }
    if (until > now()) {
      return true;
    }
    gone.delete(userId);
    return false;
  }

  async function cachedGet(key: string): Promise<string | null | undefined> {
    try {
      const value = await redis.get(key);
      redisTracker.succeeded();
      return value;
    } catch (error) {
      redisTracker.failed(error);
      return undefined;
    }
  }

  async function cachedSet(key: string, value: string): Promise<void> {
    try {
      await redis.set(key, value, 'EX', CACHE_TTL_SECONDS);
    } catch (error) {
      redisTracker.failed(error);
    }
  }

  /** A device token's version must still be its account's: deletion and revocation both end it. */
  async function checkVersion(userId: string, version: number): Promise<void> {
    if (isGone(userId)) {
      throw new InvalidTokenError('revoked');
    }
    const cached = await cachedGet(versionKey(userId));
    if (cached === undefined) {
      // Redis down: the signature and expiry were checked; revocation cannot be. Degrade, logged once.
      return;
    }
    let current = cached === null ? undefined : Number(cached);
    if (current === undefined) {
      let user: Awaited<ReturnType<UserStore['find']>>;
      try {
        user = await users.find(userId);
        postgresTracker.succeeded();
      } catch (error) {
        // Neither store can say: a signed, unexpired token is believed (chat keeps working without PostgreSQL).
        postgresTracker.failed(error);
        return;
      }
      if (!user) {
        markGone(userId);
        throw new InvalidTokenError('revoked');
      }
      current = user.tokenVersion;
      await cachedSet(versionKey(userId), String(current));
    }
    if (current !== version) {
      throw new InvalidTokenError('revoked');
    }
  }

  async function externalUser(token: string, provider: ExternalProvider): Promise<string> {
    let subject: string | undefined;
    try {
      const { payload } = await jwtVerify(token, jwks as ReturnType<typeof createRemoteJWKSet>, {
        issuer: provider.issuer,
        audience: provider.audience,
        algorithms: EXTERNAL_ALGORITHMS,
        requiredClaims: ['sub', 'exp'],
        currentDate: new Date(now()),
      });
      subject = payload.sub;
    } catch (error) {
      throw new InvalidTokenError(joseReason(error));
    }
    if (!subject) {
      throw new InvalidTokenError('claims');
    }
    const identityHash = externalIdentityHash(provider.issuer, subject);
    const cached = await cachedGet(externalKey(identityHash));
    if (cached) {
      return cached;
    }
    // First sight (or Redis forgot): PostgreSQL makes or finds the user. If it is down, this propagates as a 503.
    const user = await users.findOrCreateExternal(identityHash);
    await cachedSet(externalKey(identityHash), user.id);
    return user.id;
  }

  return {
    async authenticate(token) {
      if (token.length > MAX_TOKEN_CHARS) {
        throw new InvalidTokenError('oversized');
      }
      let issuer: string | undefined;
      try {
        issuer = decodeJwt(token).iss;
      } catch {
        throw new InvalidTokenError('malformed');
      }
      if (issuer === DEVICE_TOKEN_ISSUER) {
        const claims = await deviceTokens.verify(token);
        await checkVersion(claims.userId, claims.version);
        return claims.userId;
      }
      if (options.external && issuer === options.external.issuer) {
        return externalUser(token, options.external);
      }
      throw new InvalidTokenError('claim iss');
    },

    async forget(userId, identityHashes) {
      markGone(userId);
      // One DEL per key: on a Redis Cluster the keys lie in different slots.
      await Promise.all([versionKey(userId), ...identityHashes.map(externalKey)].map((key) => redis.del(key)));
    },
  };
}
