import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { type ChatBody, postChat, request } from '../helpers/http-client.js';
import { pollUntilDone, postQueue, QUEUE_TEST_ENV, type QueuedBody } from '../helpers/queue-http.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { startTestBackend, type TestBackend } from '../helpers/test-backend.js';

const PASSWORD = 'tls-test-password';

/** A throw-away CA and a certificate for localhost / 127.0.0.1 signed by it. */
function makeCertificates(dir: string) {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '1',
    '-subj',
    '/CN=focus-test-ca',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '1',
    '-extfile',
    'ext.cnf',
  );
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

async function redisState(backend: TestBackend): Promise<string> {
  return ((await request(`${backend.url}/readyz`)).json as { checks: { redis: string } }).checks.redis;
}

/** rediss:// with REDIS_TLS_CA_FILE and REDIS_PASSWORD: every connection (API, queue worker, BullMQ's) speaks TLS. */
describe('Redis over TLS with a password', () => {
  const dir = mkdtempSync(join(tmpdir(), 'focus-redis-tls-'));
  let files: ReturnType<typeof makeCertificates>;
  let redis: RedisServer;
  let simulator: GroqSimulator;
  const backends: TestBackend[] = [];

  beforeAll(async () => {
    files = makeCertificates(dir);
    redis = await startRedisServer({
      tls: { certFile: files.cert, keyFile: files.key },
      args: ['--requirepass', PASSWORD],
    });
    simulator = await startGroqSimulator({ latencyMs: 5, apiKey: 'test-key' });
  });

  afterAll(async () => {
    await Promise.all(backends.map((backend) => backend.close()));
    await simulator.close();
    await redis.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  async function backendWith(env: Record<string, string>) {
    const backend = await startTestBackend({
      ...QUEUE_TEST_ENV,
      GROQ_BASE_URL: simulator.url,
      REDIS_URL: `rediss://localhost:${redis.port}`,
      REDIS_PASSWORD: PASSWORD,
      ...env,
    });
    backends.push(backend);
    return backend;
  }

  it('caches, limits and queues through a verified TLS connection', async () => {
    const backend = await backendWith({ REDIS_TLS_CA_FILE: files.ca });
    expect(await redisState(backend)).toBe('up');
    const first = await postChat(backend.url, { message: 'TLS, first time' }, { ip: '192.0.2.1' });
    const second = await postChat(backend.url, { message: 'TLS, first time' }, { ip: '192.0.2.1' });
    expect([(first.json as ChatBody).cached, (second.json as ChatBody).cached]).toEqual([false, true]);
    expect(second.headers.get('ratelimit-remaining')).not.toBeNull();
    const queued = await postQueue(backend.url, { message: 'TLS, queued' }, { ip: '192.0.2.2' });
    expect(queued.status).toBe(202);
    const done = await pollUntilDone(backend.url, (queued.json as QueuedBody).jobId, { ip: '192.0.2.2' });
    expect(done.status).toBe('completed');
  });

  it('refuses a server whose certificate it cannot verify (no CA given)', async () => {
    const backend = await backendWith({});
    expect(await redisState(backend)).toBe('down');
    expect(backend.logs.text).toMatch(/redis connection lost; degrading/);
  });
});
