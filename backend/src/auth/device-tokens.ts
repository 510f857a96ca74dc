import { createHash } from 'node:crypto';
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
  // The configured secret may be any length: hash it into a full-strength HS256 key.
  const key = async () =>
    createHash('sha256')
      .update(await options.secret())
      .digest();

  return {
    async mint({ userId, version }) {
      const issuedAt = Math.floor(now() / 1000);
      const expiresAt = issuedAt + options.ttlSeconds;
      const token = await new SignJWT({ ver: version })
        .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
        .setSubject(userId)
        .setIssuer(DEVICE_TOKEN_ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt(issuedAt)
        .setExpirationTime(expiresAt)
        .sign(await key());
      return { token, expiresAt: new Date(expiresAt * 1000) };
    },

    async verify(token) {
      let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
      try {
        ({ payload } = await jwtVerify(token, await key(), {
          algorithms: [ALGORITHM],
          issuer: DEVICE_TOKEN_ISSUER,
          audience: AUDIENCE,
          requiredClaims: ['sub', 'exp', 'iat'],
          currentDate: new Date(now()),
        }));
      } catch (error) {
        throw new InvalidTokenError(joseReason(error));
      }
      if (typeof payload.sub !== 'string' || !Number.isInteger(payload.ver)) {
        throw new InvalidTokenError('claims');
      }
      return { userId: payload.sub, version: payload.ver as number };
    },
  };
}
