import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type GroqSimulator, startGroqSimulator } from '../../sim/groq-simulator.js';
import { createFocusChatClient, FocusChatError, type JobProgress } from '../../src/client/focus-chat-client.js';
import { QUEUE_TEST_ENV } from '../helpers/queue-http.js';
import { deletePrefix, startTestBackend, type TestBackend } from '../helpers/test-backend.js';

/** What the proxy does to the next POST /api/chat/queue; everything else is forwarded. */
type Mischief = 'none' | 'lose-answer' | 'drop-connection' | 'rate-limit' | 'queue-full' | 'hang';

/**
 * A proxy in front of a real backend that misbehaves on demand, like an
 * instance dying under a POST (the job may or may not be queued, the client
 * sees an error) or a rate limit.
 */
async function startFlakyProxy(target: string) {
  let mischief: Mischief = 'none';
  const posts: { idempotencyKey: string | undefined; at: number }[] = [];

  async function forward(request: IncomingMessage, body: Buffer) {
    const headers = Object.fromEntries(
      Object.entries(request.headers).filter(
        (entry): entry is [string, string] => typeof entry[1] === 'string' && entry[0] !== 'host',
      ),
    );
    return fetch(`${target}${request.url}`, {
      method: request.method,
      headers,
      body: body.length > 0 ? new Uint8Array(body) : undefined,
    });
  }

  async function handle(request: IncomingMessage, response: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of request) {
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks);
    const isPost = request.method === 'POST' && request.url === '/api/chat/queue';
    if (isPost) {
      posts.push({ idempotencyKey: request.headers['idempotency-key'] as string | undefined, at: Date.now() });
    }
    const act = isPost ? mischief : 'none';
    if (isPost) {
      mischief = 'none';
    }
    if (act === 'drop-connection') {
      request.socket.destroy();
      return;
    }
    if (act === 'rate-limit') {
      response.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      response.end(JSON.stringify({ error: { code: 'rate_limited', message: 'slow down' } }));
      return;
    }
    if (act === 'queue-full') {
      response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '30' });
      response.end(JSON.stringify({ error: { code: 'queue_full', message: 'The queue is full.' } }));
      return;
    }
    if (act === 'hang') {
      // An instance that froze (or a host gone without a reset): the connection stays open, no answer ever comes.
      return;
    }
    const answer = await forward(request, body);
    if (act === 'lose-answer') {
      // The job is queued, but the client only sees the proxy's error.
      response.writeHead(502, { 'content-type': 'text/plain' });
      response.end('bad gateway');
      return;
    }
    response.writeHead(answer.status, Object.fromEntries(answer.headers));
    response.end(Buffer.from(await answer.arrayBuffer()));
  }

  const server: Server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    posts,
    misbehave(next: Mischief) {
      mischief = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('focus chat client against a real backend', () => {
  let simulator: GroqSimulator;
  let backend: TestBackend;
  let proxy: Awaited<ReturnType<typeof startFlakyProxy>>;
  const client = () => createFocusChatClient({ baseUrl: proxy.url, minPollMs: 100, timeoutMs: 20_000 });
  const uniqueMessage = () => `Help me start my homework (${randomUUID()})`;

  beforeAll(async () => {
    simulator = await startGroqSimulator({ latencyMs: 100, apiKey: 'test-key' });
    backend = await startTestBackend({ ...QUEUE_TEST_ENV, GROQ_BASE_URL: simulator.url });
    proxy = await startFlakyProxy(backend.url);
  });

  beforeEach(() => {
    simulator.reset();
    simulator.configure({ latencyMs: 100 });
    proxy.posts.length = 0;
  });

  afterAll(async () => {
    await proxy.close();
    await deletePrefix(backend.runtime, backend.prefix);
    await backend.close();
    await simulator.close();
  });

  it('queues, reports progress while polling, and resolves with the answer', async () => {
    simulator.configure({ latencyMs: 1500 });
    const progress: JobProgress[] = [];
    const reply = await client().send(uniqueMessage(), { onProgress: (step) => progress.push(step) });
    expect(reply).toMatchObject({ response: expect.stringMatching(/^\[sim\] /), cached: false, provider: 'groq' });
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.every((step) => step.status === 'processing' && step.estimatedTime >= 1)).toBe(true);
  });

  it('sends a POST whose answer was lost again with the same key: one job, one upstream call', async () => {
    proxy.misbehave('lose-answer');
    const reply = await client().send(uniqueMessage());
    expect(reply.response).toMatch(/^\[sim\] /);
    expect(proxy.posts).toHaveLength(2);
    expect(proxy.posts[0]?.idempotencyKey).toBeTruthy();
    expect(proxy.posts[1]?.idempotencyKey).toBe(proxy.posts[0]?.idempotencyKey);
    expect(simulator.stats().requests).toBe(1);
  });

  it('sends the POST again after a connection error', async () => {
    proxy.misbehave('drop-connection');
    const reply = await client().send(uniqueMessage());
    expect(reply.response).toMatch(/^\[sim\] /);
    expect(proxy.posts).toHaveLength(2);
  });

  it('waits for Retry-After on 429 before sending again', async () => {
    proxy.misbehave('rate-limit');
    await client().send(uniqueMessage());
    expect(proxy.posts).toHaveLength(2);
    const [firstAt = 0, secondAt = 0] = proxy.posts.map((post) => post.at);
    expect(secondAt - firstAt).toBeGreaterThanOrEqual(950);
  });

  it('gives up on a hung POST after requestTimeoutMs and sends it again with the same key', async () => {
    proxy.misbehave('hang');
    const reply = await createFocusChatClient({
      baseUrl: proxy.url,
      minPollMs: 100,
      timeoutMs: 20_000,
      requestTimeoutMs: 1000,
    }).send(uniqueMessage());
    expect(reply.response).toMatch(/^\[sim\] /);
    expect(proxy.posts).toHaveLength(2);
    expect(proxy.posts[1]?.idempotencyKey).toBe(proxy.posts[0]?.idempotencyKey);
    expect(simulator.stats().requests).toBe(1);
  });

  it('rejects with the last error once the POST attempts are spent, without waiting for another try', async () => {
    proxy.misbehave('queue-full');
    const refused = await createFocusChatClient({ baseUrl: proxy.url, timeoutMs: 20_000, maxPostAttempts: 1 })
      .send(uniqueMessage())
      .catch((error: unknown) => error);
    // Not "timeout": a 30 s Retry-After past the deadline is no reason to hide the backend's answer.
    expect(refused).toMatchObject({ name: 'FocusChatError', code: 'queue_full', status: 503 });
    expect(proxy.posts).toHaveLength(1);
  });

  it('rejects with the backend error code when the job fails or the input is bad', async () => {
    simulator.configure({ mode: 'error', errorStatus: 400 });
    const failed = await client()
      .send(uniqueMessage())
      .catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(FocusChatError);
    expect(failed).toMatchObject({ code: 'upstream_rejected', jobId: expect.any(String) });

    const invalid = await client()
      .send('   ')
      .catch((error: unknown) => error);
    expect(invalid).toMatchObject({ name: 'FocusChatError', code: 'invalid_request', status: 400 });
    expect(proxy.posts).toHaveLength(2);
  });

  it('stops when the caller aborts', async () => {
    const controller = new AbortController();
    const sent = client().send(uniqueMessage(), { signal: controller.signal });
    setTimeout(() => controller.abort(), 150);
    await expect(sent).rejects.toMatchObject({ code: 'aborted' });
  });

  it('signs in, sends the token, and a second device with the same token sees the same jobs', async () => {
    const phone = client();
    const account = await phone.signIn();
    expect(account).toMatchObject({ userId: expect.any(String), token: expect.any(String) });
    const job = await phone.queue(uniqueMessage());
    // The same account on another device: the token restored from storage.
    const tablet = createFocusChatClient({ baseUrl: proxy.url, minPollMs: 100, token: account.token });
    expect((await tablet.waitFor(job.jobId)).response).toMatch(/^\[sim\] /);
    // Anyone else (anonymous, same address) does not see it.
    await expect(client().waitFor(job.jobId)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('streams the answer in pieces, and falls back to the queue where the stream cannot start', async () => {
    const pieces: string[] = [];
    const reply = await client().stream(uniqueMessage(), { onDelta: (text) => pieces.push(text) });
    expect(pieces.length).toBeGreaterThan(3);
    expect(pieces.join('')).toBe(reply.response);
    expect(reply).toMatchObject({ cached: false, provider: 'groq' });

    // A platform without a streaming route (or fetch streams): the same answer through the queue.
    const noStreams: typeof fetch = (input, init) =>
      String(input).endsWith('/api/chat/stream')
        ? Promise.reject(new TypeError('streaming unsupported'))
        : fetch(input, init);
    const fallbackPieces: string[] = [];
    const postsBefore = proxy.posts.length;
    const viaQueue = await createFocusChatClient({ baseUrl: proxy.url, minPollMs: 100, fetch: noStreams }).stream(
      uniqueMessage(),
      { onDelta: (text) => fallbackPieces.push(text) },
    );
    expect(proxy.posts.length).toBe(postsBefore + 1);
    expect(fallbackPieces).toEqual([viaQueue.response]);
  });
});
