import { createHash, createSecretKey, type KeyObject } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';

/**
 * Our own tokens for device accounts: HS256 JWTs with `sub` = the user id,
 * `ver` = the account's token version when minted (raising it revokes them),
 * our issuer and audience, and an expiry. Only HS256 is accepted, so a token
 * naming `alg: none` or an asymmetric algorithm is refused by jose itself.
 */

export const DEVICE_TOKEN_ISSUER = 'focus-backend';
const AUDIENCE = 'focus-app';
const ALGORITHM = 'HS256';
/** Tokens verified recently, by their text: the app sends the same one on every call. */
const VERIFIED_MAX_ENTRIES = 10_000;

export interface DeviceClaims {
  userId: string;
  version: number;
}

export interface MintedToken {
  token: string;
  expiresAt: Date;
}

/** Where the signing secret comes from: AUTH_JWT_SECRET, or the one the instances share in PostgreSQL. */
export type SecretSource = () => Promise<Uint8Array>;

export interface DeviceTokens {
  mint(claims: DeviceClaims): Promise<MintedToken>;
  /** The claims of a valid token; throws InvalidTokenError for any bad one. */
  verify(token: string): Promise<DeviceClaims>;
}

export class InvalidTokenError extends Error {
  constructor(readonly reason: string) {
    super(`invalid token: ${reason}`);
    this.name = 'InvalidTokenError';
  }
}

/** A short, loggable reason for a jose failure (never the token). */
export function joseReason(error: unknown): string {
  if (error instanceof errors.JWTExpired) {
    return 'expired';
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    return `claim ${error.claim}`;
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return 'algorithm not allowed';
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return 'signature';
  }
  if (error instanceof errors.JOSEError) {
    return 'malformed';
  }
  throw error;
}

export function createDeviceTokens(options: {
  secret: SecretSource;
  ttlSeconds: number;
  now?: () => number;
}): DeviceTokens {
  const now = options.now ?? Date.now;
  const key = signingKey(options.secret);
  // A token's signature and claims cannot change: once verified, only its expiry needs looking at
  // (revocation is the caller's check, on every use). jose's verification costs ~130 µs of CPU.
  const verified = new Map<string, { claims: DeviceClaims; expiresAtMs: number }>();
  return {
    mint: async (claims) => mint(claims, await key(), options.ttlSeconds, now()),
    async verify(token) {
      const known = verified.get(token);
      if (known && known.expiresAtMs > now()) {
        return known.claims;
      }
      const checked = await verifyWithJose(token, await key(), now());
      if (verified.size >= VERIFIED_MAX_ENTRIES) {
        verified.delete(verified.keys().next().value as string);
      }
      verified.set(token, checked);
      return checked.claims;
    },
  };
}

/**
 * The configured secret may be any length: hash it into a full-strength HS256 key, made once per
 * secret (a KeyObject spares jose importing raw bytes on every call).
 */
function signingKey(source: SecretSource): () => Promise<KeyObject> {
  let made: { secret: Uint8Array; key: KeyObject } | undefined;
  return async () => {
    const secret = await source();
    if (made?.secret !== secret) {
      made = { secret, key: createSecretKey(createHash('sha256').update(secret).digest()) };
    }
    return made.key;
  };
}

async function mint(
  { userId, version }: DeviceClaims,
  key: KeyObject,
  ttlSeconds: number,
  nowMs: number,
): Promise<MintedToken> {
  const issuedAt = Math.floor(nowMs / 1000);
  const expiresAt = issuedAt + ttlSeconds;
  const token = await new SignJWT({ ver: version })
    .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
    .setSubject(userId)
    .setIssuer(DEVICE_TOKEN_ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(issuedAt)
    .setExpirationTime(expiresAt)
    .sign(key);
  return { token, expiresAt: new Date(expiresAt * 1000) };
}

async function verifyWithJose(
  token: string,
  key: KeyObject,
  nowMs: number,
): Promise<{ claims: DeviceClaims; expiresAtMs: number }> {
  let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: [ALGORITHM],
      issuer: DEVICE_TOKEN_ISSUER,
      audience: AUDIENCE,
      requiredClaims: ['sub', 'exp', 'iat'],
      currentDate: new Date(nowMs),
    }));
  } catch (error) {
    throw new InvalidTokenError(joseReason(error));
  }
  if (typeof payload.sub !== 'string' || !Number.isInteger(payload.ver)) {
    throw new InvalidTokenError('claims');
  }
  return {
    claims: { userId: payload.sub, version: payload.ver as number },
    expiresAtMs: (payload.exp as number) * 1000,
  };
}
