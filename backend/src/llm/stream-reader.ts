import { estimateTokens } from './quota-governor.js';
import type { Completion, CompletionRequest, UpstreamLimits } from './types.js';
import { UpstreamError } from './upstream-error.js';

/** The part of a chat.completion.chunk we read; groq-sdk and openai stream the same shape. */
interface UsageData {
  prompt_tokens?: number | null;
  completion_tokens?: number | null;
}

export interface ChunkData {
  model?: string | null;
  choices: { delta?: { content?: string | null } | null; finish_reason?: string | null }[];
  /** OpenAI's stream_options.include_usage puts it on a last chunk. */
  usage?: UsageData | null;
  /** Groq puts it on the chunk that finishes. */
  x_groq?: { usage?: UsageData | null } | null;
}

export interface StreamReading {
  provider: string;
  model: string;
  onDelta: (text: string) => void;
  /** Aborts the upstream request: the stream then ends with an error. */
  abort: () => void;
  /** Longest silence between two chunks before the stream counts as stalled. */
  idleTimeoutMs: number;
  /** Our estimate of the prompt's tokens, for a stream that ends without usage. */
  promptTokensEstimate: number;
  /** An SDK error as ours. */
  toUpstream: (error: unknown) => UpstreamError;
}

const tokensOf = (text: string) => Math.ceil(text.length / 4);

/** What a stream has sent so far. */
interface Collected {
  text: string;
  model?: string;
  usage?: UsageData;
  finishReason?: string;
}

/**
 * Reads a streamed completion to its end, passing each piece of text on as
 * it comes. Fails with the upstream's own error kind while nothing was sent
 * (the gateway may still retry or fall back), and as 'interrupted' once
 * something was: a cut, a stall, a missing finish or the caller leaving.
 */
export async function readStream(chunks: AsyncIterable<ChunkData>, reading: StreamReading): Promise<Completion> {
  const collected: Collected = { text: '' };
  const watchdog = stallWatchdog(reading);
  try {
    for await (const chunk of chunks) {
      watchdog.kick();
      take(collected, chunk, reading.onDelta);
    }
  } catch (error) {
    const cause = watchdog.stalled()
      ? new UpstreamError('timeout', reading.provider, 'upstream stream stalled')
      : reading.toUpstream(error);
    throw collected.text === '' ? cause : interrupted(reading, collected, cause.message, cause);
  } finally {
    watchdog.stop();
  }
  return finished(reading, collected);
}

/** Aborts the stream after idleTimeoutMs without a chunk. */
function stallWatchdog(reading: StreamReading) {
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  const kick = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      reading.abort();
    }, reading.idleTimeoutMs);
  };
  kick();
  return { kick, stop: () => clearTimeout(timer), stalled: () => stalled };
}

function take(collected: Collected, chunk: ChunkData, onDelta: (text: string) => void): void {
  collected.model ??= chunk.model ?? undefined;
  const choice = chunk.choices[0];
  const piece = choice?.delta?.content;
  if (piece) {
    collected.text += piece;
    onDelta(piece);
  }
  collected.finishReason = choice?.finish_reason ?? collected.finishReason;
  collected.usage = chunk.usage ?? chunk.x_groq?.usage ?? collected.usage;
}

function interrupted(reading: StreamReading, collected: Collected, reason: string, cause?: UpstreamError) {
  return new UpstreamError(
    'interrupted',
    reading.provider,
    `stream interrupted: ${reason}`,
    cause?.status,
    undefined,
    undefined,
    reading.promptTokensEstimate + tokensOf(collected.text),
  );
}

/** A stream that ended: a completion if it finished with an answer. */
function finished(reading: StreamReading, collected: Collected): Completion {
  const { provider } = reading;
  const { text, usage, finishReason } = collected;
  if (finishReason === undefined) {
    if (text === '') {
      throw new UpstreamError('unavailable', provider, 'upstream stream ended before any answer');
    }
    throw interrupted(reading, collected, 'ended without a finish');
  }
  if (text.trim() === '') {
    throw new UpstreamError('unavailable', provider, 'upstream returned an empty answer');
  }
  return {
    text,
    model: collected.model ?? reading.model,
    provider,
    usage: {
      promptTokens: usage?.prompt_tokens ?? reading.promptTokensEstimate,
      completionTokens: usage?.completion_tokens ?? tokensOf(text),
    },
    finishReason,
  };
}

/**
 * One streamed call of an SDK: `open` starts it with our abort signal (the
 * caller's, and ours for a stall), then the stream is read to its end. Any
 * failure comes out as an UpstreamError (see readStream for which kind).
 */
export async function streamCompletion(
  request: CompletionRequest & { onDelta: (text: string) => void },
  options: {
    provider: string;
    model: string;
    idleTimeoutMs: number;
    open: (signal: AbortSignal) => Promise<{ chunks: AsyncIterable<ChunkData>; limits?: UpstreamLimits }>;
    toUpstream: (error: unknown) => UpstreamError;
  },
): Promise<Completion> {
  const controller = new AbortController();
  const abort = () => controller.abort();
  request.signal?.addEventListener('abort', abort, { once: true });
  try {
    const { chunks, limits } = await options.open(controller.signal);
    const completion = await readStream(chunks, {
      provider: options.provider,
      model: options.model,
      onDelta: request.onDelta,
      abort,
      idleTimeoutMs: options.idleTimeoutMs,
      promptTokensEstimate: estimateTokens(request.messages, 0),
      toUpstream: options.toUpstream,
    });
    return limits ? { ...completion, limits } : completion;
  } catch (error) {
    throw options.toUpstream(error);
  } finally {
    request.signal?.removeEventListener('abort', abort);
  }
}
