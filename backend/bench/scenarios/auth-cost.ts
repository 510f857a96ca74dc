import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { startGroqSimulator } from '../../sim/groq-simulator.js';
import { createAuthenticator } from '../../src/auth/authenticator.js';
import { createDeviceTokens } from '../../src/auth/device-tokens.js';
import { createDatabase, migrate } from '../../src/db/database.js';
import { createUserStore } from '../../src/db/user-store.js';
import { callerKeys } from '../../src/redis/caller-key.js';
import { createDegradationTracker } from '../../src/telemetry/degradation.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import { startBackendProcess } from '../../test/helpers/backend-process.js';
import { benchPrefix, deleteKeys, report, runLoad, runScenario } from '../harness.js';

/**
 * What a Bearer token costs per request. In process: verifying a device token
 * seen for the first time (HS256 signature and claims) and one seen before,
 * then the whole check with revocation (one Redis GET). Over HTTP: cache hits on one backend process, anonymous and then
 * signed in, 10 s each over 10 connections.
 */
const SCENARIO = 'auth-cost';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/focus_bench';
const SECRET = 'bench-secret-bench-secret-bench-secret-42';
const ROUNDS = 5000;

async function microseconds(rounds: number, step: () => Promise<unknown>): Promise<number> {
  for (let index = 0; index < 200; index += 1) {
    await step();
  }
  const started = performance.now();
  for (let index = 0; index < rounds; index += 1) {
    await step();
  }
  return Math.round(((performance.now() - started) * 1000) / rounds);
}

runScenario(async () => {
  const prefix = benchPrefix(SCENARIO);
  const logger = createLogger({ level: 'silent', instanceId: SCENARIO });
  const metrics = createMetrics();
  await migrate({ url: DATABASE_URL, timeoutMs: 5000, logger });
  const database = createDatabase({ url: DATABASE_URL, poolMax: 2, timeoutMs: 5000, logger });
  const redis = new Redis(REDIS_URL);
  const simulator = await startGroqSimulator({ latencyMs: 40 });
  const backend = await startBackendProcess(
    {
      REDIS_URL,
      REDIS_PREFIX: prefix,
      DATABASE_URL,
      AUTH_JWT_SECRET: SECRET,
      GROQ_BASE_URL: simulator.url,
      GROQ_API_KEY: 'bench-key',
      MAX_REQUESTS_PER_MINUTE: '1000000000',
      USER_REQUESTS_PER_MINUTE: '1000000000',
      LOG_LEVEL: 'warn',
    },
    { stdout: 'discard', entry: 'build' },
  );
  try {
    const users = createUserStore(database);
    const secret = new TextEncoder().encode(SECRET);
    const deviceTokens = createDeviceTokens({ secret: async () => secret, ttlSeconds: 3600 });
    const authenticator = createAuthenticator({
      deviceTokens,
      users,
      redis,
      prefix,
      redisTracker: createDegradationTracker('bench', logger, metrics),
      postgresTracker: createDegradationTracker('bench', logger, metrics, 'postgres'),
      callerKeys: callerKeys('bench key'),
    });
    const user = await users.createDevice();
    const { token } = await deviceTokens.mint({ userId: user.id, version: user.tokenVersion });
    // A token seen for the first time (full HS256 verification), then one seen before (its claims remembered).
    const fresh = await Promise.all(
      Array.from({ length: ROUNDS + 200 }, (_, index) =>
        deviceTokens.mint({ userId: `${user.id.slice(0, -4)}${String(index % 10_000).padStart(4, '0')}`, version: 0 }),
      ),
    );
    let next = 0;
    const verifyFirstUs = await microseconds(ROUNDS, () =>
      deviceTokens.verify((fresh[next++] as { token: string }).token),
    );
    const verifyRepeatUs = await microseconds(ROUNDS, () => deviceTokens.verify(token));
    const authenticateUs = await microseconds(ROUNDS, () => authenticator.authenticate(token));

    const signUp = await fetch(`${backend.url}/api/auth/device`, { method: 'POST' });
    const { token: httpToken } = (await signUp.json()) as { token: string };
    const body = JSON.stringify({ message: 'I have 20 minutes and three overdue tasks. Where do I start?' });
    const json = { 'content-type': 'application/json' };
    const signedIn = { ...json, authorization: `Bearer ${httpToken}` };
    for (const headers of [json, signedIn]) {
      const warmUp = await fetch(`${backend.url}/api/chat`, { method: 'POST', headers, body });
      if (warmUp.status !== 200) {
        throw new Error(`warm-up answered ${warmUp.status}: ${await warmUp.text()}`);
      }
    }
    const load = (headers: Record<string, string>) =>
      runLoad({
        url: backend.url,
        path: '/api/chat',
        method: 'POST',
        headers,
        body,
        durationSeconds: 10,
        connections: 10,
      });
    const anonymous = await load(json);
    const withToken = await load(signedIn);
    report(SCENARIO, {
      verifyFirstUs,
      verifyRepeatUs,
      authenticateUs,
      anonymous: {
        requestsPerSecond: anonymous.requestsPerSecond,
        p50Ms: anonymous.p50Ms,
        p99Ms: anonymous.p99Ms,
        non2xx: anonymous.non2xx,
      },
      signedIn: {
        requestsPerSecond: withToken.requestsPerSecond,
        p50Ms: withToken.p50Ms,
        p99Ms: withToken.p99Ms,
        non2xx: withToken.non2xx,
      },
    });
  } finally {
    await backend.stop();
    await simulator.close();
    await deleteKeys(REDIS_URL, prefix);
    await redis.quit();
    await database.end();
  }
});
