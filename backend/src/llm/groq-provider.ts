import Groq, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'groq-sdk';
import { estimateTokens } from './quota-governor.js';
import { chatCompletionBody, sdkErrorToUpstream, toCompletion } from './sdk-mapping.js';
import { readStream } from './stream-reader.js';
import type { Completion, CompletionRequest, LlmProvider } from './types.js';
import { readRateLimitHeaders, type UpstreamError } from './upstream-error.js';

export interface GroqProviderOptions {
  name?: string;
  apiKey: string;
  /** As groq-sdk takes it: the host, without /openai/v1. */
  baseURL: string;
  model: string;
  timeoutMs: number;
}

/** Translates groq-sdk's errors into our UpstreamError kinds. */
export function toUpstreamError(error: unknown, provider: string): UpstreamError {
  return sdkErrorToUpstream(error, provider, {
    APIConnectionTimeoutError,
    APIUserAbortError,
    APIConnectionError,
    APIError,
  });
}

/** Groq through groq-sdk. No SDK retries: retry-after, backoff and fallback are ours. */
export function createGroqProvider(options: GroqProviderOptions): LlmProvider {
  const name = options.name ?? 'groq';
  const client = new Groq({
    apiKey: options.apiKey,
    baseURL: options.baseURL,
    maxRetries: 0,
    timeout: options.timeoutMs,
  });

  /** Groq reports the usage of a stream in the finishing chunk's x_groq. */
  async function streamed(request: CompletionRequest, onDelta: (text: string) => void, timeout: number) {
    const controller = new AbortController();
    const abort = () => controller.abort();
    request.signal?.addEventListener('abort', abort, { once: true });
    try {
      const { data, response } = await client.chat.completions
        .create({ ...chatCompletionBody(options.model, request), stream: true }, { signal: controller.signal, timeout })
        .withResponse();
      const completion = await readStream(data, {
        provider: name,
        model: options.model,
        onDelta,
        abort,
        idleTimeoutMs: timeout,
        promptTokensEstimate: estimateTokens(request.messages, 0),
        toUpstream: (error) => toUpstreamError(error, name),
      });
      return { ...completion, limits: readRateLimitHeaders(response.headers) };
    } catch (error) {
      throw toUpstreamError(error, name);
    } finally {
      request.signal?.removeEventListener('abort', abort);
    }
  }

  return {
    name,
    model: options.model,
    async complete(request: CompletionRequest): Promise<Completion> {
      const timeout = Math.min(request.timeoutMs ?? options.timeoutMs, options.timeoutMs);
      const { onDelta } = request;
      if (onDelta) {
        return streamed(request, onDelta, timeout);
      }
      try {
        const { data, response } = await client.chat.completions
          .create(chatCompletionBody(options.model, request), { signal: request.signal, timeout })
          .withResponse();
        return { ...toCompletion(data, name, options.model), limits: readRateLimitHeaders(response.headers) };
      } catch (error) {
        throw toUpstreamError(error, name);
      }
    },
  };
}
