/** A response read whole: status, headers and the body parsed as JSON when it is JSON. */
export interface TestResponse {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
  /** Wall time from sending to the full body, in ms. */
  elapsedMs: number;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
}

export async function request(url: string, options: RequestOptions = {}): Promise<TestResponse> {
  const started = performance.now();
  const hasBody = options.body !== undefined;
  const response = await fetch(url, {
    method: options.method ?? (hasBody ? 'POST' : 'GET'),
    headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), ...options.headers },
    body: hasBody ? (typeof options.body === 'string' ? options.body : JSON.stringify(options.body)) : undefined,
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json, elapsedMs: performance.now() - started };
}

/** POST /api/chat as the client `ip` (sent as X-Forwarded-For, believed from the loopback peer). */
export function postChat(
  baseUrl: string,
  body: unknown,
  options: { ip?: string; headers?: Record<string, string> } = {},
): Promise<TestResponse> {
  return request(`${baseUrl}/api/chat`, {
    body,
    headers: { ...(options.ip ? { 'x-forwarded-for': options.ip } : {}), ...options.headers },
  });
}

export interface ChatBody {
  response: string;
  cached: boolean;
  model: string;
  provider: string;
  usage: { promptTokens: number; completionTokens: number };
  requestId: string;
}

export interface ErrorBody {
  error: { code: string; message: string };
  requestId: string;
}
