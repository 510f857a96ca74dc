import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { createDeviceTokens } from '../../src/auth/device-tokens.js';
import { signUp } from '../helpers/accounts.js';
import { type ErrorBody, postChat, request } from '../helpers/http-client.js';
import { getStatus, postQueue } from '../helpers/queue-http.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';
import { dropTestDatabase, queryDatabase, testDatabaseUrl } from '../helpers/test-database.js';

const SECRET = 'test-secret-of-at-least-thirty-two-characters';
const ISSUER = 'https://issuer.example.test';
const AUDIENCE = 'focus-app-external';
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const deviceKey = createHash('sha256').update(SECRET).digest();

/** A stand-in identity provider: serves its public key set and counts how often it is asked. */
async function startJwksServer() {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'key-1', alg: 'RS256', use: 'sig' };
  let fetches = 0;
  const server: Server = createServer((_req, res) => {
    fetches += 1;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    fetches: () => fetches,
    sign: (claims: Record<string, unknown>, options: { audience?: string; expiresIn?: string | number } = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'key-1' })
        .setIssuer(ISSUER)
        .setAudience(options.audience ?? AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(options.expiresIn ?? '10m')
        .sign(privateKey),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('bearer tokens', () => {
  const prefix = testPrefix('auth');
  const databaseUrl = testDatabaseUrl('auth');
  let simulator: GroqSimulator;
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  let backend: TestBackend;
  let redis: Redis;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 1 });
    jwks = await startJwksServer();
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      DATABASE_URL: databaseUrl,
      GROQ_BASE_URL: simulator.url,
      GROQ_RPM: '0',
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWKS_URL: jwks.url,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
    });
    redis = new Redis();
  });

  afterAll(async () => {
    await backend?.close();
    await redis?.quit();
    await deleteTestPrefix(prefix);
    await dropTestDatabase(databaseUrl);
    await jwks?.close();
    await simulator?.close();
  });

  const userCount = async () =>
    Number((await queryDatabase<{ n: string }>(databaseUrl, 'SELECT count(*) AS n FROM users'))[0]?.n);
  const perCallerKeys = async () =>
    (await redis.keys(`${prefix}*`))
      // Per-caller state only: not the stats window, which counts every request, refused or not.
      .filter((key) => /^(rl:(ip|user)|usage|queue|cache|auth):/.test(key.slice(prefix.length)))
      .sort();

  it('refuses every kind of bad token with 401 invalid_token, and writes nothing', async () => {
    const deleted = await signUp(backend.url);
    expect((await request(`${backend.url}/api/me`, { method: 'DELETE', headers: deleted.headers })).status).toBe(204);
    const past = Date.now() - 40 * 86_400_000;
    const device = (claims: Record<string, unknown>) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('8f5c3c5e-2b4f-4d5e-9b1a-0c1d2e3f4a5b')
        .setIssuer('focus-backend')
        .setAudience('focus-app')
        .setIssuedAt()
        .setExpirationTime('10m');
    const cases: Record<string, string> = {
      expired: (
        await createDeviceTokens({ secret: async () => Buffer.from(SECRET), ttlSeconds: 60, now: () => past }).mint({
          userId: deleted.userId,
          version: 0,
        })
      ).token,
      'wrong signature': (
        await createDeviceTokens({
          secret: async () => Buffer.from('another-secret-another-secret-another'),
          ttlSeconds: 60,
        }).mint({
          userId: deleted.userId,
          version: 0,
        })
      ).token,
      'alg none': `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ sub: deleted.userId, iss: 'focus-backend', aud: 'focus-app', ver: 0, exp: 9_999_999_999 })}.`,
      'wrong issuer': await device({ ver: 0 }).setIssuer('someone-else').sign(deviceKey),
      'wrong audience': await device({ ver: 0 }).setAudience('another-app').sign(deviceKey),
      'revoked (account deleted)': deleted.token,
      'unknown user': await device({ ver: 0 }).sign(deviceKey),
      'stale version': await device({ ver: 7 }).sign(deviceKey),
      malformed: 'not-a-jwt',
      'malformed segments': 'eyJhbGciOiJIUzI1NiJ9.%%%.abc',
      oversized: `${'a'.repeat(3000)}.${'b'.repeat(3000)}.c`,
      'external, wrong audience': await jwks.sign({ sub: 'ext-1' }, { audience: 'another-app' }),
      'external, expired': await jwks.sign({ sub: 'ext-1' }, { expiresIn: Math.floor(past / 1000) }),
      'external issuer, HS256 signed': await new SignJWT({ sub: 'ext-1' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setExpirationTime('10m')
        .sign(deviceKey),
    };
    const usersBefore = await userCount();
    const keysBefore = await perCallerKeys();
    for (const [name, token] of Object.entries(cases)) {
      for (const path of ['/api/chat', '/api/chat/queue']) {
        const response = await request(`${backend.url}${path}`, {
          body: { message: 'hello' },
          headers: { authorization: `Bearer ${token}` },
        });
        expect(response.status, `${name} on ${path}`).toBe(401);
        expect((response.json as ErrorBody).error.code, name).toBe('invalid_token');
        expect(response.headers.get('www-authenticate'), name).toBe('Bearer error="invalid_token"');
      }
      const me = await request(`${backend.url}/api/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(me.status, `${name} on /api/me`).toBe(401);
    }
    const basic = await postChat(
      backend.url,
      { message: 'hello' },
      { headers: { authorization: 'Basic dXNlcjpwdw==' } },
    );
    expect(basic.status).toBe(401);
    expect(await userCount()).toBe(usersBefore);
    expect(await perCallerKeys()).toEqual(keysBefore);
  });

  it('makes an external provider user a row on first sight, and reads its keys once', async () => {
    const fetchesBefore = jwks.fetches();
    const token = await jwks.sign({ sub: 'supabase-user-42' });
    const headers = { authorization: `Bearer ${token}` };
    const first = await request(`${backend.url}/api/me`, { headers });
    expect(first.status).toBe(200);
    const { userId } = first.json as { userId: string };
    for (let index = 0; index < 5; index += 1) {
      const again = await jwks.sign({ sub: 'supabase-user-42' });
      const me = await request(`${backend.url}/api/me`, { headers: { authorization: `Bearer ${again}` } });
      expect((me.json as { userId: string }).userId).toBe(userId);
    }
    expect((await postChat(backend.url, { message: 'External hello' }, { headers })).status).toBe(200);
    expect(jwks.fetches() - fetchesBefore).toBeLessThanOrEqual(1);
    const rows = await queryDatabase<{ kind: string }>(databaseUrl, 'SELECT kind FROM users WHERE id = $1', [userId]);
    expect(rows).toEqual([{ kind: 'external' }]);
    // Neither the subject nor the issuer is stored: only their hash.
    const identities = await queryDatabase<{ identity_hash: string }>(
      databaseUrl,
      'SELECT identity_hash FROM external_identities',
    );
    expect(JSON.stringify(identities)).not.toContain('supabase-user-42');
  });
});

describe('AUTH_REQUIRED=true', () => {
  const prefix = testPrefix('auth-required');
  let backend: TestBackend;

  beforeAll(async () => {
    backend = await startTestBackend({ REDIS_PREFIX: prefix, AUTH_REQUIRED: 'true', AUTH_JWT_SECRET: SECRET });
  });

  afterAll(async () => {
    await backend?.close();
    await deleteTestPrefix(prefix);
  });

  it('asks anonymous callers of chat, queue and status to sign in, and serves signed-in ones', async () => {
    const anonymous = [
      await postChat(backend.url, { message: 'hi' }),
      await postQueue(backend.url, { message: 'hi' }),
      await getStatus(backend.url, '6f9619ff-8b86-4d01-b42d-00cf4fc964ff'),
    ];
    for (const response of anonymous) {
      expect(response.status).toBe(401);
      expect((response.json as ErrorBody).error.code).toBe('auth_required');
    }
    const user = await signUp(backend.url);
    expect((await postChat(backend.url, { message: 'hi' }, { headers: user.headers })).status).toBe(200);
  });
});
