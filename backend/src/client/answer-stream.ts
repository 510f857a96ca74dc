import type { ChatReply } from '../routes/responses.js';
import type { StreamOptions } from './chat-types.js';
import { cancelled, FocusChatError } from './focus-chat-error.js';
import { type ClientSettings, errorFrom, parseJson } from './http-calls.js';

type Reader = ReadableStreamDefaultReader<Uint8Array>;

/** Reads POST /api/chat/stream; undefined when it could not start and the queue should answer instead. */
export async function streamAnswer(
  settings: ClientSettings,
  message: string,
  options: StreamOptions,
): Promise<ChatReply | undefined> {
  const controller = new AbortController();
  const abort = () => controller.abort();
  options.signal?.addEventListener('abort', abort, { once: true });
  // Until the first event, a silent backend is cut after requestTimeoutMs (then the queue takes over).
  const startTimer = setTimeout(abort, settings.requestTimeoutMs);
  try {
    const reader = await openStream(settings, message, options, controller.signal);
    return reader && (await readEvents(reader, options, () => clearTimeout(startTimer)));
  } finally {
    clearTimeout(startTimer);
    options.signal?.removeEventListener('abort', abort);
  }
}

/** The stream's reader; undefined when the backend cannot stream now (the queue may still answer). */
async function openStream(
  settings: ClientSettings,
  message: string,
  options: StreamOptions,
  signal: AbortSignal,
): Promise<Reader | undefined> {
  let response: Response;
  try {
    response = await settings.doFetch(`${settings.baseUrl}/api/chat/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...settings.headers() },
      body: JSON.stringify({ message, ...(options.history ? { history: options.history } : {}) }),
      signal,
    });
  } catch {
    if (options.signal?.aborted) {
      throw cancelled();
    }
    return undefined;
  }
  const reader = response.body?.getReader?.();
  if (response.ok && reader) {
    return reader;
  }
  void response.body?.cancel().catch(() => undefined);
  // Bad input or credentials would fail the queue the same way: say so now.
  if (response.status >= 400 && response.status < 500 && response.status !== 404 && response.status !== 429) {
    throw errorFrom({
      status: response.status,
      retryAfterMs: undefined,
      body: parseJson(await response.text().catch(() => '')),
    });
  }
  return undefined;
}

/** Server-sent events until `done` (the reply) or `error`; undefined when the stream broke before its first event. */
async function readEvents(reader: Reader, options: StreamOptions, onStart: () => void): Promise<ChatReply | undefined> {
  const decoder = new TextDecoder();
  let buffer = '';
  let started = false;
  for (;;) {
    const bytes = await nextChunk(reader, options.signal, started);
    if (!bytes) {
      return undefined;
    }
    buffer += decoder.decode(bytes, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!name || data === undefined) {
        continue;
      }
      if (!started) {
        started = true;
        onStart();
      }
      const reply = onEvent(name, data, options);
      if (reply) {
        return reply;
      }
    }
  }
}

/** The next bytes; undefined when the stream ended or broke before its first event (the queue answers then). */
async function nextChunk(
  reader: Reader,
  signal: AbortSignal | undefined,
  started: boolean,
): Promise<Uint8Array | undefined> {
  let chunk: ReadableStreamReadResult<Uint8Array>;
  try {
    chunk = await reader.read();
  } catch {
    if (signal?.aborted) {
      throw cancelled();
    }
    if (!started) {
      return undefined;
    }
    throw new FocusChatError('network_error', 'The connection dropped during the answer.');
  }
  if (chunk.done) {
    if (!started) {
      return undefined;
    }
    throw new FocusChatError('network_error', 'The answer ended before it was complete.');
  }
  return chunk.value;
}

/** One event: a delta goes to onDelta, `done` is the reply, `error` throws (what was shown is not the whole answer). */
function onEvent(name: string, data: string, options: StreamOptions): ChatReply | undefined {
  const payload = parseJson(data) as
    | { text?: string }
    | (ChatReply & { requestId?: string })
    | { error?: { code?: string; message?: string } };
  if (name === 'delta') {
    options.onDelta?.((payload as { text?: string }).text ?? '');
  } else if (name === 'done') {
    const { requestId: _requestId, ...reply } = payload as ChatReply & { requestId?: string };
    return reply as ChatReply;
  } else if (name === 'error') {
    const { error } = payload as { error?: { code?: string; message?: string } };
    throw new FocusChatError(error?.code ?? 'upstream_interrupted', error?.message ?? 'The answer was cut off.');
  }
  return undefined;
}
