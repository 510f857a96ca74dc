import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { createHttpFetch } from './http-fetch.js';
import { chatCompletionBody, sdkErrorToUpstream, toCompletion } from './sdk-mapping.js';
import { streamCompletion } from './stream-reader.js';
import type { Completion, CompletionRequest, LlmProvider } from './types.js';
import type { UpstreamError } from './upstream-error.js';

export interface OpenAiCompatibleProviderOptions {
  name: string;
  /** Servers without keys (Ollama, a private vLLM) accept any value. */
  apiKey: string;
  /** Including the API version path, e.g. http://vllm:8000/v1. */
  baseURL: string;
  model: string;
  timeoutMs: number;
}

/** Translates the openai SDK's errors into our UpstreamError kinds. */
export function toUpstreamErrorFromOpenAi(error: unknown, provider: string): UpstreamError {
  return sdkErrorToUpstream(error, provider, {
    APIConnectionTimeoutError,
    APIUserAbortError,
    APIConnectionError,
    APIError,
  });
}

/**
 * Any OpenAI-compatible chat endpoint (OpenAI, Oracle Cloud Generative AI,
 * vLLM, Ollama) through the openai SDK. No SDK retries, as for Groq. Its
 * rate-limit headers are not read: their meaning differs between servers
 * (OpenAI's *-requests are per minute, Groq's per day), so the governor
 * learns only from this provider's 429s.
 */
export function createOpenAiCompatibleProvider(options: OpenAiCompatibleProviderOptions): LlmProvider {
  const { name } = options;
  const settings = { apiKey: options.apiKey, baseURL: options.baseURL, maxRetries: 0, timeout: options.timeoutMs };
  // Whole answers over node:http (see http-fetch.ts); streams keep Node's fetch, as for Groq.
  const client = new OpenAI({ ...settings, fetch: createHttpFetch() });
  const streamClient = new OpenAI(settings);

  return {
    name,
    model: options.model,
    async complete(request: CompletionRequest): Promise<Completion> {
      const timeout = Math.min(request.timeoutMs ?? options.timeoutMs, options.timeoutMs);
      const { onDelta } = request;
      if (onDelta) {
        // OpenAI-compatible servers report a stream's usage on a last chunk when asked (stream_options).
        return streamCompletion(
          { ...request, onDelta },
          {
            provider: name,
            model: options.model,
            idleTimeoutMs: timeout,
            open: async (signal) => ({
              chunks: await streamClient.chat.completions.create(
                {
                  ...chatCompletionBody(options.model, request),
                  stream: true,
                  stream_options: { include_usage: true },
                },
                { signal, timeout },
              ),
            }),
            toUpstream: (error) => toUpstreamErrorFromOpenAi(error, name),
          },
        );
      }
      try {
        const data = await client.chat.completions.create(chatCompletionBody(options.model, request), {
          signal: request.signal,
          timeout,
        });
        return toCompletion(data, name, options.model);
      } catch (error) {
        throw toUpstreamErrorFromOpenAi(error, name);
      }
    },
  };
}
