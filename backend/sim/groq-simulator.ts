import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for Groq's OpenAI-compatible chat API, for tests, benchmarks and
 * the offline default. It answers deterministically, can be slowed down, made
 * to fail or hang, and enforces per-minute request and token limits with
 * Groq's headers and 429s. It streams (SSE) when asked, and can cut or stall
 * a stream after some chunks. Tests steer it through /__sim/* or the handle.
 */
export interface SimulatorBehaviour {
  /** Added before every answer. */
  latencyMs: number;
  /** Random extra latency, uniform in [0, jitterMs]. */
  jitterMs: number;
  /** ok: answer; error: answer errorStatus; hang: never answer. */
  mode: 'ok' | 'error' | 'hang';
  errorStatus: number;
  /** The next N requests fail with errorStatus, then mode applies. */
  failNext: number;
  /** Enforced limits over a sliding window of windowMs; 0 = unlimited. */
  rpm: number;
  tpm: number;
  /** Daily request limit reported in x-ratelimit-*-requests (Groq reports requests per day). */
  rpd: number;
  /** When set, requests must carry this bearer key. */
  apiKey: string;
  /** Prefixed to every answer, so tests can tell simulators apart. */
  label: string;
  /** Streams (stream: true): the first chunk comes after latencyMs, each next one after chunkDelayMs. */
  chunkDelayMs: number;
  /** Streams: drop the connection after this many content chunks (0: never). */
  cutStreamAfterChunks: number;
  /** Streams: go silent after this many content chunks, connection open (0: never). */
  stallAfterChunks: number;
  /** A fixed answer per model name, unprefixed (a moderation model's "unsafe\nS11"). */
  replies: Record<string, string>;
  /** Models that never answer, whatever mode says (a moderation model timing out). */
  hangModels: string[];
  /** The "minute" of rpm and tpm: Groq's 60 s, shorter so a test of a full window runs in seconds. */
  windowMs: number;
}

export interface SimulatorCall {
  at: number;
  status: number;
  model: string;
  tokens: number;
}

export interface SimulatorStats {
  requests: number;
  byStatus: Record<string, number>;
  /** The largest number of accepted (200) calls in any window (windowMs, 60 s by default). */
  maxCallsPerMinute: number;
  calls: SimulatorCall[];
  /** Streams whose client hung up before the end, and when the last one did (ms since epoch). */
  streamsAbandoned: number;
  lastAbandonedAt: number | undefined;
  /** The last completion request's body, for tests of parameter pass-through. */
  lastBody: Record<string, unknown> | undefined;
}

export interface GroqSimulator {
  url: string;
  port: number;
  configure(change: Partial<SimulatorBehaviour>): void;
  reset(): void;
  stats(): SimulatorStats;
  close(): Promise<void>;
}

const DEFAULT_BEHAVIOUR: SimulatorBehaviour = {
  latencyMs: 40,
  jitterMs: 0,
  mode: 'ok',
  errorStatus: 500,
  failNext: 0,
  rpm: 0,
  tpm: 0,
  rpd: 14_400,
  apiKey: '',
  label: 'sim',
  chunkDelayMs: 10,
  cutStreamAfterChunks: 0,
  stallAfterChunks: 0,
  replies: {},
  hangModels: [],
  windowMs: 60_000,
};

const MAX_CALL_LOG = 5000;

const ANSWERS = [
  'Pick the smallest piece: open the file and write one line. Set a 5-minute timer and start now.',
  'Take one breath, clear your desk of one thing, then do just the first step for 5 minutes.',
  'Write the task on a sticky note, put your phone in another room, and start a 10-minute sprint.',
  'Choose one thing that matters most today and do only its first 2 minutes. That is enough to begin.',
];

const estimateTokens = (text: string) => Math.max(1, Math.ceil(text.length / 4));

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

function formatDuration(ms: number): string {
  const seconds = Math.max(0, ms) / 1000;
  return seconds >= 60 ? `${Math.floor(seconds / 60)}m${(seconds % 60).toFixed(2)}s` : `${seconds.toFixed(2)}s`;
}

export async function startGroqSimulator(
  initial: Partial<SimulatorBehaviour> = {},
  listen: { port?: number; host?: string } = {},
): Promise<GroqSimulator> {
  let behaviour: SimulatorBehaviour = { ...DEFAULT_BEHAVIOUR, ...initial };
  let calls: SimulatorCall[] = [];
  let requests = 0;
  let byStatus: Record<string, number> = {};
  let streamsAbandoned = 0;
  let lastAbandonedAt: number | undefined;
  let lastBody: Record<string, unknown> | undefined;
  const hanging = new Set<ServerResponse>();

  const acceptedInWindow = (now: number) =>
    calls.filter((call) => call.status === 200 && call.at > now - behaviour.windowMs);

  function record(status: number, model: string, tokens: number) {
    byStatus[status] = (byStatus[status] ?? 0) + 1;
    calls.push({ at: Date.now(), status, model, tokens });
    if (calls.length > MAX_CALL_LOG) {
      calls = calls.slice(-MAX_CALL_LOG);
    }
  }

  function limitHeaders(now: number, extraTokens: number): Record<string, string> {
    const window = acceptedInWindow(now);
    const usedTokens = window.reduce((sum, call) => sum + call.tokens, 0) + extraTokens;
    const oldest = window[0]?.at ?? now;
    const resetMs = window.length > 0 ? oldest + behaviour.windowMs - now : 0;
    const dayUsed = calls.filter((call) => call.status === 200 && call.at > now - 86_400_000).length;
    return {
      'x-ratelimit-limit-requests': String(behaviour.rpd),
      'x-ratelimit-remaining-requests': String(Math.max(0, behaviour.rpd - dayUsed)),
      'x-ratelimit-reset-requests': formatDuration(86_400_000 / Math.max(1, behaviour.rpd)),
      'x-ratelimit-limit-tokens': String(behaviour.tpm || 1_000_000),
      'x-ratelimit-remaining-tokens': String(Math.max(0, (behaviour.tpm || 1_000_000) - usedTokens)),
      'x-ratelimit-reset-tokens': formatDuration(resetMs),
    };
  }

  async function handleCompletion(request: IncomingMessage, response: ServerResponse) {
    requests += 1;
    const raw = await readBody(request);
    if (behaviour.apiKey && request.headers.authorization !== `Bearer ${behaviour.apiKey}`) {
      record(401, '', 0);
      sendJson(response, 401, {
        error: { message: 'Invalid API Key', type: 'invalid_request_error', code: 'invalid_api_key' },
      });
      return;
    }
    let body: {
      model?: string;
      messages?: { role: string; content: string }[];
      max_tokens?: number;
      stream?: boolean;
      stream_options?: { include_usage?: boolean };
    };
    try {
      body = JSON.parse(raw);
      lastBody = body as Record<string, unknown>;
    } catch {
      record(400, '', 0);
      sendJson(response, 400, { error: { message: 'invalid JSON', type: 'invalid_request_error' } });
      return;
    }
    const model = body.model ?? 'unknown';
    const messages = Array.isArray(body.messages) ? body.messages : [];
    if (messages.length === 0) {
      record(400, model, 0);
      sendJson(response, 400, { error: { message: 'messages must not be empty', type: 'invalid_request_error' } });
      return;
    }

    const delay = behaviour.latencyMs + Math.random() * behaviour.jitterMs;
    if (behaviour.mode === 'hang' || behaviour.hangModels.includes(model)) {
      record(0, model, 0);
      hanging.add(response);
      response.on('close', () => hanging.delete(response));
      return;
    }
    if (behaviour.failNext > 0 || behaviour.mode === 'error') {
      behaviour.failNext = Math.max(0, behaviour.failNext - 1);
      const status = behaviour.errorStatus;
      await new Promise((resolve) => setTimeout(resolve, delay));
      record(status, model, 0);
      sendJson(response, status, { error: { message: `simulated ${status}`, type: 'server_error' } });
      return;
    }

    const promptTokens = messages.reduce((sum, message) => sum + estimateTokens(String(message.content ?? '')), 0);
    const digest = createHash('sha256').update(JSON.stringify(messages)).digest();
    const text = behaviour.replies[model] ?? `[${behaviour.label}] ${ANSWERS[(digest[0] ?? 0) % ANSWERS.length]}`;
    const completionTokens = Math.min(estimateTokens(text), body.max_tokens ?? 1024);
    const tokens = promptTokens + completionTokens;

    const now = Date.now();
    const window = acceptedInWindow(now);
    const windowTokens = window.reduce((sum, call) => sum + call.tokens, 0);
    const overRequests = behaviour.rpm > 0 && window.length >= behaviour.rpm;
    const overTokens = behaviour.tpm > 0 && windowTokens + tokens > behaviour.tpm;
    if (overRequests || overTokens) {
      const retryAfterMs = Math.max(1000, (window[0]?.at ?? now) + behaviour.windowMs - now);
      record(429, model, 0);
      sendJson(
        response,
        429,
        { error: { message: 'Rate limit reached (simulated)', type: 'tokens', code: 'rate_limit_exceeded' } },
        { ...limitHeaders(now, 0), 'retry-after': String(Math.ceil(retryAfterMs / 1000)) },
      );
      return;
    }
    // Count the call as soon as it is accepted, as a real limiter would.
    record(200, model, tokens);
    await new Promise((resolve) => setTimeout(resolve, delay));
    const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: tokens };
    if (body.stream) {
      await streamCompletion(
        response,
        { id: `chatcmpl-sim-${requests}`, created: Math.floor(now / 1000), model },
        text,
        {
          usage,
          includeUsage: body.stream_options?.include_usage === true,
          headers: limitHeaders(Date.now(), 0),
        },
      );
      return;
    }
    sendJson(
      response,
      200,
      {
        id: `chatcmpl-sim-${requests}`,
        object: 'chat.completion',
        created: Math.floor(now / 1000),
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: tokens },
      },
      limitHeaders(Date.now(), 0),
    );
  }

  /** Groq's stream: content chunks, a last one with finish_reason and x_groq.usage, a usage chunk if asked, [DONE]. */
  async function streamCompletion(
    response: ServerResponse,
    meta: { id: string; created: number; model: string },
    text: string,
    options: { usage: Record<string, number>; includeUsage: boolean; headers: Record<string, string> },
  ) {
    let finished = false;
    response.on('close', () => {
      if (!finished) {
        streamsAbandoned += 1;
        lastAbandonedAt = Date.now();
      }
    });
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...options.headers });
    const send = (payload: unknown) => response.write(`data: ${JSON.stringify(payload)}\n\n`);
    const chunk = (delta: Record<string, unknown>, finishReason: string | null, extra: Record<string, unknown> = {}) =>
      send({
        ...meta,
        object: 'chat.completion.chunk',
        choices: [{ index: 0, delta, finish_reason: finishReason }],
        ...extra,
      });
    const pieces = text.match(/\S+\s*/g) ?? [text];
    chunk({ role: 'assistant', content: '' }, null);
    for (const [index, piece] of pieces.entries()) {
      if (response.destroyed) {
        return;
      }
      if (index > 0) {
        await new Promise((resolve) => setTimeout(resolve, behaviour.chunkDelayMs));
      }
      if (behaviour.cutStreamAfterChunks > 0 && index === behaviour.cutStreamAfterChunks) {
        finished = true;
        response.destroy();
        return;
      }
      if (behaviour.stallAfterChunks > 0 && index === behaviour.stallAfterChunks) {
        hanging.add(response);
        return;
      }
      chunk({ content: piece }, null);
    }
    chunk({}, 'stop', { x_groq: { id: meta.id, usage: options.usage } });
    if (options.includeUsage) {
      send({ ...meta, object: 'chat.completion.chunk', choices: [], usage: options.usage });
    }
    finished = true;
    response.end('data: [DONE]\n\n');
  }

  function stats(): SimulatorStats {
    const accepted = calls.filter((call) => call.status === 200).map((call) => call.at);
    let maxCallsPerMinute = 0;
    let start = 0;
    for (let end = 0; end < accepted.length; end += 1) {
      while ((accepted[end] as number) - (accepted[start] as number) >= behaviour.windowMs) {
        start += 1;
      }
      maxCallsPerMinute = Math.max(maxCallsPerMinute, end - start + 1);
    }
    return {
      requests,
      byStatus: { ...byStatus },
      maxCallsPerMinute,
      calls: [...calls],
      streamsAbandoned,
      lastAbandonedAt,
      lastBody,
    };
  }

  function reset() {
    behaviour = { ...DEFAULT_BEHAVIOUR, ...initial };
    calls = [];
    requests = 0;
    byStatus = {};
    streamsAbandoned = 0;
    lastAbandonedAt = undefined;
    lastBody = undefined;
  }

  async function handle(request: IncomingMessage, response: ServerResponse) {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method === 'POST' && (path === '/openai/v1/chat/completions' || path === '/v1/chat/completions')) {
      await handleCompletion(request, response);
    } else if (request.method === 'GET' && path === '/__sim/stats') {
      sendJson(response, 200, stats());
    } else if (request.method === 'POST' && path === '/__sim/config') {
      const change = JSON.parse((await readBody(request)) || '{}') as Partial<SimulatorBehaviour>;
      behaviour = { ...behaviour, ...change };
      sendJson(response, 200, behaviour);
    } else if (request.method === 'POST' && path === '/__sim/reset') {
      reset();
      sendJson(response, 200, behaviour);
    } else if (request.method === 'GET' && path === '/healthz') {
      sendJson(response, 200, { status: 'ok' });
    } else {
      sendJson(response, 404, { error: { message: 'not found' } });
    }
  }

  const server: Server = createServer((request, response) => {
    handle(request, response).catch(() => sendJson(response, 500, { error: { message: 'simulator failure' } }));
  });
  await new Promise<void>((resolve) => server.listen(listen.port ?? 0, listen.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    configure(change) {
      behaviour = { ...behaviour, ...change };
    },
    reset,
    stats,
    async close() {
      for (const response of hanging) {
        response.destroy();
      }
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
