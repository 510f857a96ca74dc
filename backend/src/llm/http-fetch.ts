import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/**
 * The `fetch` the SDKs get for their non-streamed calls: node:http over keep-alive agents. Node's own
 * fetch (undici) clones each request with a body (a web stream tee, for redirects), validates every
 * header through WebIDL and reads the answer through web streams; with groq-sdk on top it was the
 * largest CPU item of a cache miss after GC. This one writes the body as it is and buffers the answer.
 *
 * What the SDKs see is what fetch gives them: it resolves at the answer's headers (their timeout covers
 * that part, as with fetch), rejects an abort with the signal's reason, a connection failure with
 * TypeError('fetch failed', {cause}) and a body cut after the headers with TypeError('terminated'),
 * so their error classes (and sdk-mapping.ts's kinds) stay the same. Unlike fetch it follows no
 * redirect (an API answers none; a 3xx is a failed status) and asks for no compression.
 */
export function createHttpFetch(): typeof fetch {
  const agents: Record<string, HttpAgent | undefined> = {
    'http:': new HttpAgent({ keepAlive: true }),
    'https:': new HttpsAgent({ keepAlive: true }),
  };
  return function httpFetch(input, init = {}) {
    const url = input instanceof Request ? undefined : new URL(input);
    const agent = url && agents[url.protocol];
    if (url === undefined || agent === undefined || !isSendable(init.body)) {
      return Promise.reject(new TypeError('http fetch takes an http(s) URL and a string body'));
    }
    return send(url, agent, init, init.body ?? undefined);
  } as typeof fetch;
}

function isSendable(body: RequestInit['body']): body is string | null | undefined {
  return body === undefined || body === null || typeof body === 'string';
}

const aborted = (signal: AbortSignal): unknown =>
  signal.reason ?? new DOMException('This operation was aborted', 'AbortError');

function send(url: URL, agent: HttpAgent, init: RequestInit, body: string | undefined): Promise<Response> {
  const { signal } = init;
  if (signal?.aborted) {
    return Promise.reject(aborted(signal));
  }
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
      method: init.method ?? 'GET',
      headers: outgoingHeaders(init.headers, body),
      agent,
    });
    // Before the headers the fetch rejects; after them, the body does (see bufferedResponse).
    let fail = (error: unknown) => reject(error);
    const onAbort = () => {
      fail(aborted(signal as AbortSignal));
      request.destroy();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = () => signal?.removeEventListener('abort', onAbort);
    request.on('error', (error) => {
      fail(new TypeError('fetch failed', { cause: error }));
      done();
    });
    request.once('response', (message) => {
      const response = bufferedResponse(url, message, done);
      fail = response.fail;
      resolve(response.response);
    });
    request.end(body);
  });
}

function outgoingHeaders(headers: RequestInit['headers'], body: string | undefined): OutgoingHttpHeaders {
  const outgoing: OutgoingHttpHeaders = {};
  (headers instanceof Headers ? headers : new Headers(headers)).forEach((value, name) => {
    outgoing[name] = value;
  });
  if (body !== undefined) {
    outgoing['content-length'] = Buffer.byteLength(body);
  }
  return outgoing;
}

/** The answer as the SDKs read it: status, headers (a real Headers), text() and json() of the buffered body. */
function bufferedResponse(url: URL, message: IncomingMessage, done: () => void) {
  const chunks: Buffer[] = [];
  let fail: (error: unknown) => void = () => undefined;
  const bytes = new Promise<Buffer>((resolve, reject) => {
    fail = (error) => {
      reject(error);
      message.destroy();
    };
    message.on('data', (chunk: Buffer) => chunks.push(chunk));
    message.on('error', (error) => reject(new TypeError('terminated', { cause: error })));
    message.once('end', () => resolve(Buffer.concat(chunks)));
    message.once('close', () => {
      if (!message.complete) {
        reject(new TypeError('terminated', { cause: new Error('the upstream closed the answer before its end') }));
      }
    });
  }).finally(done);
  // An answer whose body nobody reads (a 204, an empty 200) must not fail the process when it is cut.
  bytes.catch(() => undefined);
  const headers = new Headers();
  for (let index = 0; index < message.rawHeaders.length; index += 2) {
    headers.append(message.rawHeaders[index] as string, message.rawHeaders[index + 1] as string);
  }
  const status = message.statusCode ?? 0;
  const text = async () => (await bytes).toString('utf8');
  const response = {
    ok: status >= 200 && status < 300,
    status,
    statusText: message.statusMessage ?? '',
    url: url.href,
    redirected: false,
    headers,
    body: null,
    text,
    json: async () => JSON.parse(await text()) as unknown,
  };
  // The SDKs read only the members above; the rest of Response (web streams) is what this avoids.
  return { response: response as unknown as Response, fail };
}
