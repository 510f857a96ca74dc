import Groq, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'groq-sdk';
import type { Completion, CompletionRequest, LlmProvider } from './types.js';
import { readRateLimitHeaders, UpstreamError, upstreamErrorFromStatus } from './upstream-error.js';

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
  if (error instanceof UpstreamError) {
    return error;
  }
  if (error instanceof APIConnectionTimeoutError) {
    return new UpstreamError('timeout', provider, 'upstream timed out');
  }
  if (error instanceof APIUserAbortError) {
    return new UpstreamError('timeout', provider, 'upstream call aborted');
  }
  if (error instanceof APIConnectionError) {
    return new UpstreamError('unavailable', provider, 'cannot reach upstream');
  }
  if (error instanceof APIError) {
    return upstreamErrorFromStatus(error.status ?? 0, error.headers as Headers | undefined, provider);
  }
  return new UpstreamError('unavailable', provider, 'unexpected upstream failure');
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

  return {
    name,
    model: options.model,
    async complete(request: CompletionRequest): Promise<Completion> {
      try {
        const { data, response } = await client.chat.completions
          .create(
            {
              model: options.model,
              messages: request.messages.map((message) => ({ role: message.role, content: message.content })),
              max_tokens: request.maxTokens,
              temperature: request.temperature,
            },
            { signal: request.signal, timeout: Math.min(request.timeoutMs ?? options.timeoutMs, options.timeoutMs) },
          )
          .withResponse();
        const text = data.choices[0]?.message?.content ?? '';
        if (text.trim() === '') {
          throw new UpstreamError('unavailable', name, 'upstream returned an empty answer');
        }
        return {
          text,
          model: data.model ?? options.model,
          provider: name,
          usage: {
            promptTokens: data.usage?.prompt_tokens ?? 0,
            completionTokens: data.usage?.completion_tokens ?? 0,
          },
          limits: readRateLimitHeaders(response.headers),
        };
      } catch (error) {
        throw toUpstreamError(error, name);
      }
    },
  };
}
