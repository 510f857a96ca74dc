import Groq, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'groq-sdk';
import { createHttpFetch } from './http-fetch.js';
import { chatCompletionBody, sdkErrorToUpstream, toCompletion } from './sdk-mapping.js';
import { streamCompletion } from './stream-reader.js';
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
  const settings = { apiKey: options.apiKey, baseURL: options.baseURL, maxRetries: 0, timeout: options.timeoutMs };
  // Whole answers over node:http (see http-fetch.ts); streams keep Node's fetch, whose body is the web stream the SDK reads.
  const client = new Groq({ ...settings, fetch: createHttpFetch() });
  const streamClient = new Groq(settings);

  return {
    name,
    model: options.model,
    async complete(request: CompletionRequest): Promise<Completion> {
      const timeout = Math.min(request.timeoutMs ?? options.timeoutMs, options.timeoutMs);
      const { onDelta } = request;
      if (onDelta) {
        // Groq reports a stream's usage in the finishing chunk's x_groq.
        return streamCompletion(
          { ...request, onDelta },
          {
            provider: name,
            model: options.model,
            idleTimeoutMs: timeout,
            open: async (signal) => {
              const { data, response } = await streamClient.chat.completions
                .create({ ...chatCompletionBody(options.model, request), stream: true }, { signal, timeout })
                .withResponse();
              return { chunks: data, limits: readRateLimitHeaders(response.headers) };
            },
            toUpstream: (error) => toUpstreamError(error, name),
          },
        );
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
