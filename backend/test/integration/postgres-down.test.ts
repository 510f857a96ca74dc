import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { signUp } from '../helpers/accounts.js';
import { type ErrorBody, postChat, request } from '../helpers/http-client.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { deleteTestPrefix, startTestBackend, type TestBackend, testPrefix } from '../helpers/test-backend.js';
import { dropTestDatabase, testDatabaseUrl } from '../helpers/test-database.js';

/** PostgreSQL is never on the chat path: losing it only stops sign-up and the account pages. */
describe('PostgreSQL down', () => {
  const prefix = testPrefix('pg-down');
  const directUrl = testDatabaseUrl('pg_down');
  let proxy: TcpProxy;
  let simulator: GroqSimulator;
  let backend: TestBackend;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 1 });
    proxy = await startTcpProxy({ host: '127.0.0.1', port: 5432 });
    const viaProxy = new URL(directUrl);
    viaProxy.port = String(proxy.port);
    backend = await startTestBackend({
      REDIS_PREFIX: prefix,
      DATABASE_URL: viaProxy.toString(),
      DATABASE_TIMEOUT_MS: '500',
      GROQ_BASE_URL: simulator.url,
      GROQ_RPM: '0',
    });
  });

  afterAll(async () => {
    await backend?.close();
    await proxy?.close();
    await deleteTestPrefix(prefix);
    await dropTestDatabase(directUrl);
    await simulator?.close();
  });

  it('keeps signed-in chat working, refuses sign-up and account pages with 503 and Retry-After', async () => {
    const seen = await signUp(backend.url);
    expect((await postChat(backend.url, { message: 'before the outage' }, { headers: seen.headers })).status).toBe(200);
    // Never used before the outage: its account was never looked up.
    const unseen = await signUp(backend.url);

    await proxy.cut();

    for (const user of [seen, unseen]) {
      const chat = await postChat(backend.url, { message: 'during the outage' }, { headers: user.headers });
      expect(chat.status).toBe(200);
    }
    const refused = [
      await request(`${backend.url}/api/auth/device`, { method: 'POST' }),
      await request(`${backend.url}/api/me`, { headers: seen.headers }),
      await request(`${backend.url}/api/me/export`, { headers: seen.headers }),
      await request(`${backend.url}/api/me`, { method: 'DELETE', headers: seen.headers }),
    ];
    for (const response of refused) {
      expect(response.status).toBe(503);
      expect((response.json as ErrorBody).error.code).toBe('service_unavailable');
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    const outageLines = backend.logs.lines.filter((line) => line.includes('accounts: postgres failing'));
    expect(outageLines).toHaveLength(1);

    await proxy.restore();
    await expect
      .poll(async () => (await request(`${backend.url}/api/auth/device`, { method: 'POST' })).status)
      .toBe(201);
    expect((await request(`${backend.url}/api/me`, { headers: seen.headers })).status).toBe(200);
  });
});
