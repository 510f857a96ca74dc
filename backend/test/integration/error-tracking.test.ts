import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { scrubEvent } from '../../src/telemetry/error-tracking.js';
import { createLogger } from '../../src/telemetry/logger.js';
import { request } from '../helpers/http-client.js';
import { deleteTestPrefix, LogCapture, testPrefix } from '../helpers/test-backend.js';

const SECRET_MESSAGE = 'I have not slept and I keep thinking about my debts';
const SECRET_TOKEN = 'secret-bearer-token-value-123456';

/** A stand-in for Sentry's ingest: keeps every envelope it is sent. */
async function startReceiver() {
  const envelopes: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      envelopes.push((req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    dsn: `http://publickey@127.0.0.1:${port}/42`,
    envelopes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('error tracking (SENTRY_DSN)', () => {
  const prefix = testPrefix('sentry');
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let runtime: Runtime;
  let url: string;

  beforeAll(async () => {
    receiver = await startReceiver();
    // An instance id Node refuses in a header: every request fails outside the error middleware, as in the incident.
    const config = {
      ...loadConfig({ PORT: '0', REDIS_PREFIX: prefix, SHUTDOWN_DRAIN_MS: '0', SENTRY_DSN: receiver.dsn }),
      INSTANCE_ID: 'bad\nid',
    };
    runtime = await createRuntime(config, createLogger({ level: 'info', instanceId: 'sentry' }, new LogCapture()));
    ({ url } = await runtime.listen());
  });

  afterAll(async () => {
    await runtime?.shutdown();
    await receiver?.close();
    await deleteTestPrefix(prefix);
  });

  it('sends an event for a forced 500, with the request id and none of the request', async () => {
    const response = await request(`${url}/api/chat`, {
      body: { message: SECRET_MESSAGE, history: [{ role: 'user', content: SECRET_MESSAGE }] },
      headers: { authorization: `Bearer ${SECRET_TOKEN}`, 'x-request-id': 'sentry-request-0001' },
    });
    expect(response.status).toBe(500);
    await expect.poll(() => receiver.envelopes.length, { timeout: 5000 }).toBeGreaterThan(0);
    const sent = receiver.envelopes.join('\n');
    expect(sent).toContain('sentry-request-0001');
    expect(sent).toContain('"type":"event"');
    for (const secret of [SECRET_MESSAGE, SECRET_TOKEN, 'debts', 'authorization']) {
      expect(sent.toLowerCase()).not.toContain(secret.toLowerCase());
    }
  });

  it('scrubs what an integration could have added: request, user, breadcrumbs, contexts, other extras', () => {
    const scrubbed = scrubEvent({
      exception: { values: [{ type: 'TypeError' }] },
      request: { data: SECRET_MESSAGE, headers: { authorization: SECRET_TOKEN } },
      user: { ip_address: '198.51.100.1' },
      breadcrumbs: [{ message: SECRET_MESSAGE }],
      contexts: { app: {} },
      extra: { requestId: 'r-1', body: SECRET_MESSAGE },
    });
    expect(scrubbed).toEqual({ exception: { values: [{ type: 'TypeError' }] }, extra: { requestId: 'r-1' } });
  });
});
