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

/** What every step of one authenticator shares. */
interface Auth {
  options: AuthenticatorOptions;
  now: () => number;
  versionKey(userId: string): string;
  externalKey(identityHash: string): string;
  /** Deleted or unknown users: user id -> until when their tokens are refused from memory. */
  gone: Map<string, number>;
  // jose fetches the provider's keys once, caches them and refetches only on an unknown key id (with a cooldown).
  jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
}

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const { prefix } = options;
  const auth: Auth = {
    options,
    now: options.now ?? Date.now,
    versionKey: (userId) => `${prefix}auth:ver:${options.callerKeys.hash(`user:${userId}`)}`,
    externalKey: (identityHash) => `${prefix}auth:ext:${identityHash}`,
    gone: new Map(),
    jwks: options.external && createRemoteJWKSet(new URL(options.external.jwksUrl)),
  };
  return {
    authenticate: (token) => authenticate(auth, token),
    async forget(userId, identityHashes) {
      markGone(auth, userId);
      // One DEL per key: on a Redis Cluster the keys lie in different slots.
      const keys = [auth.versionKey(userId), ...identityHashes.map(auth.externalKey)];
      await Promise.all(keys.map((key) => options.redis.del(key)));
    },
  };
}

async function authenticate(auth: Auth, token: string): Promise<string> {
  if (token.length > MAX_TOKEN_CHARS) {
    throw new InvalidTokenError('oversized');
  }
  let issuer: string | undefined;
  try {
    issuer = decodeJwt(token).iss;
  } catch {
    throw new InvalidTokenError('malformed');
  }
  const { deviceTokens, external } = auth.options;
  if (issuer === DEVICE_TOKEN_ISSUER) {
    const claims = await deviceTokens.verify(token);
    await checkVersion(auth, claims.userId, claims.version);
    return claims.userId;
  }
  if (external && issuer === external.issuer) {
    return externalUser(auth, token, external);
  }
  throw new InvalidTokenError('claim iss');
}

function markGone(auth: Auth, userId: string) {
  if (auth.gone.size >= NEGATIVE_MAX_ENTRIES) {
    auth.gone.delete(auth.gone.keys().next().value as string);
  }
  auth.gone.set(userId, auth.now() + NEGATIVE_TTL_MS);
}

function isGone(auth: Auth, userId: string): boolean {
  const until = auth.gone.get(userId);
  if (until === undefined) {
    return false;
  }
  if (until > auth.now()) {
    return true;
  }
  auth.gone.delete(userId);
  return false;
}

/** A value Redis remembers: null when absent, undefined when Redis is failing. */
async function cachedGet(auth: Auth, key: string): Promise<string | null | undefined> {
  const { redis, redisTracker } = auth.options;
  try {
    const value = await redis.get(key);
    redisTracker.succeeded();
    return value;
  } catch (error) {
    redisTracker.failed(error);
    return undefined;
  }
}

async function cachedSet(auth: Auth, key: string, value: string): Promise<void> {
  try {
    await auth.options.redis.set(key, value, 'EX', CACHE_TTL_SECONDS);
  } catch (error) {
    auth.options.redisTracker.failed(error);
  }
}

/** A device token's version must still be its account's: deletion and revocation both end it. */
async function checkVersion(auth: Auth, userId: string, version: number): Promise<void> {
  if (isGone(auth, userId)) {
    throw new InvalidTokenError('revoked');
  }
  const cached = await cachedGet(auth, auth.versionKey(userId));
  if (cached === undefined) {
    // Redis down: the signature and expiry were checked; revocation cannot be. Degrade, logged once.
    return;
  }
  const current = cached === null ? await storedVersion(auth, userId) : Number(cached);
  if (current !== undefined && current !== version) {
    throw new InvalidTokenError('revoked');
  }
}

/** The account's token version from PostgreSQL, remembered in Redis; undefined when PostgreSQL cannot say. */
async function storedVersion(auth: Auth, userId: string): Promise<number | undefined> {
  const { users, postgresTracker } = auth.options;
  let user: Awaited<ReturnType<UserStore['find']>>;
  try {
    user = await users.find(userId);
    postgresTracker.succeeded();
  } catch (error) {
    // Neither store can say: a signed, unexpired token is believed (chat keeps working without PostgreSQL).
    postgresTracker.failed(error);
    return undefined;
  }
  if (!user) {
    markGone(auth, userId);
    throw new InvalidTokenError('revoked');
  }
  await cachedSet(auth, auth.versionKey(userId), String(user.tokenVersion));
  return user.tokenVersion;
}

async function externalUser(auth: Auth, token: string, provider: ExternalProvider): Promise<string> {
  let subject: string | undefined;
  try {
    const { payload } = await jwtVerify(token, auth.jwks as ReturnType<typeof createRemoteJWKSet>, {
      issuer: provider.issuer,
      audience: provider.audience,
      algorithms: EXTERNAL_ALGORITHMS,
      requiredClaims: ['sub', 'exp'],
      currentDate: new Date(auth.now()),
    });
    subject = payload.sub;
  } catch (error) {
    throw new InvalidTokenError(joseReason(error));
  }
  if (!subject) {
    throw new InvalidTokenError('claims');
  }
  const identityHash = externalIdentityHash(provider.issuer, subject);
  const cached = await cachedGet(auth, auth.externalKey(identityHash));
  if (cached) {
    return cached;
  }
  // First sight (or Redis forgot): PostgreSQL makes or finds the user. If it is down, this propagates as a 503.
  const user = await auth.options.users.findOrCreateExternal(identityHash);
  await cachedSet(auth, auth.externalKey(identityHash), user.id);
  return user.id;
}
