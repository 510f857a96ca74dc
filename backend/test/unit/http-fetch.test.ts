import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Groq from 'groq-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toUpstreamError } from '../../src/llm/groq-provider.js';
import { createHttpFetch } from '../../src/llm/http-fetch.js';

/**
 * The SDKs' non-streamed calls go through our node:http fetch instead of Node's: whatever an upstream
 * does, groq-sdk and our mapping must come to the same answer or the same UpstreamError with either.
 */
const COMPLETION = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model: 'llama-3.1-8b-instant',
  choices: [
    { index: 0, message: { role: 'assistant', content: 'Start with one sentence. ¡Ánimo!' }, finish_reason: 'stop' },
  ],
  usage: { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 },
};

type Behaviour = (request: IncomingMessage, response: ServerResponse) => void;

const behaviours: Record<string, Behaviour> = {
  ok: (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'x-ratelimit-remaining-tokens': '4000' });
    response.end(JSON.stringify(COMPLETION));
  },
  rateLimited: (_request, response) => {
    response.writeHead(429, {
      'content-type': 'application/json',
      'retry-after': '7',
      'x-ratelimit-limit-tokens': '6000',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '7.5s',
    });
    response.end(JSON.stringify({ error: { message: 'Rate limit reached', type: 'tokens' } }));
  },
  serverError: (_request, response) => {
    response.writeHead(500, { 'content-type': 'text/plain' });
    response.end('boom');
  },
  badKey: (_request, response) => {
    response.writeHead(401, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ error: { message: 'Invalid API Key' } }));
  },
  badJson: (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end('{"choices": [');
  },
  hang: () => undefined,
  cutBody: (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
    response.write('{"choices": [');
    setTimeout(() => response.socket?.destroy(), 20);
  },
};

/** What each comes to, so that agreeing with Node's fetch is not agreeing on a failure. */
const expected: Record<keyof typeof behaviours, object> = {
  ok: { data: COMPLETION, remaining: '4000' },
  rateLimited: {
    kind: 'rate_limited',
    status: 429,
    retryAfterMs: 7000,
    limits: { remainingTokens: 0, resetTokensMs: 7500 },
  },
  serverError: { kind: 'unavailable', status: 500 },
  badKey: { kind: 'misconfigured', status: 401 },
  badJson: { kind: 'unavailable', message: 'unexpected upstream failure' },
  hang: { kind: 'timeout', message: 'upstream timed out' },
  cutBody: { kind: 'unavailable', message: 'unexpected upstream failure' },
};

let server: Server;
let baseURL: string;
const requests: IncomingMessage[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    requests.push(request);
    request.resume();
    request.on('end', () => {
      const behaviour = behaviours[request.url?.split('/')[1] ?? ''] ?? behaviours.ok;
      behaviour?.(request, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** One completion through groq-sdk with the given fetch: the answer, or the error as our mapping names it. */
async function outcome(fetch: typeof globalThis.fetch | undefined, path: string, signal?: AbortSignal) {
  const client = new Groq({ apiKey: 'key', baseURL: `${baseURL}/${path}`, maxRetries: 0, timeout: 300, fetch });
  try {
    const { data, response } = await client.chat.completions
      .create({ model: 'm', messages: [{ role: 'user', content: 'Où commencer ?' }] }, { signal })
      .withResponse();
    return { data, remaining: response.headers.get('x-ratelimit-remaining-tokens') };
  } catch (error) {
    const { kind, message, status, retryAfterMs, limits } = toUpstreamError(error, 'groq');
    return { kind, message, status, retryAfterMs, limits };
  }
}

describe('http fetch', () => {
  it.each(Object.keys(behaviours))('comes to what Node’s fetch comes to when the upstream answers %s', async (path) => {
    const ours = await outcome(createHttpFetch(), path);
    expect(ours).toEqual(await outcome(undefined, path));
    expect(ours).toMatchObject(expected[path] as object);
  });

  it('maps a refused connection and an abort as Node’s fetch does', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = async (fetch?: typeof globalThis.fetch) => {
      const client = new Groq({ apiKey: 'key', baseURL: `http://127.0.0.1:${port}`, maxRetries: 0, fetch });
      return client.chat.completions
        .create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })
        .catch((error: unknown) => toUpstreamError(error, 'groq'));
    };
    expect(await refused(createHttpFetch())).toEqual(await refused());
    expect(await refused()).toMatchObject({ kind: 'unavailable', message: 'cannot reach upstream' });

    const abortedCall = (fetch?: typeof globalThis.fetch) => outcome(fetch, 'hang', AbortSignal.timeout(50));
    expect(await abortedCall(createHttpFetch())).toEqual(await abortedCall());
    expect(await abortedCall()).toMatchObject({ kind: 'timeout', message: 'upstream call aborted' });
  });

  it('sends the SDK’s headers and body, and keeps the connection for the next call', async () => {
    const fetch = createHttpFetch();
    const before = requests.length;
    for (let call = 0; call < 3; call += 1) {
      expect(await outcome(fetch, 'ok')).toMatchObject({ data: COMPLETION, remaining: '4000' });
    }
    const ours = requests.slice(before);
    // One client port for the three calls: one connection.
    expect(new Set(ours.map((request) => request.socket.remotePort)).size).toBe(1);
    const [request] = ours;
    expect(request?.headers).toMatchObject({
      authorization: 'Bearer key',
      'content-type': 'application/json',
      'content-length': String(
        Buffer.byteLength(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'Où commencer ?' }] })),
      ),
    });
  });
});
