import Groq, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'groq-sdk';
import type { Completion, CompletionRequest, LlmProvider, UpstreamLimits } from './types.js';
import { parseDurationMs, parseRetryAfterMs, UpstreamError } from './upstream-error.js';

export interface GroqProviderOptions {
  name?: string;
  apiKey: string;
  /** As groq-sdk takes it: the host, without /openai/v1. */
  baseURL: string;
  model: string;
  timeoutMs: number;
}

function readLimits(headers: Headers): UpstreamLimits {
  const number = (name: string) => {
    const raw = headers.get(name);
    const value = raw === null ? Number.NaN : Number(raw);
    return Number.isFinite(value) ? value : undefined;
  };
  return {
    remainingTokens: number('x-ratelimit-remaining-tokens'),
    remainingRequests: number('x-ratelimit-remaining-requests'),
    resetTokensMs: parseDurationMs(headers.get('x-ratelimit-reset-tokens')),
    resetRequestsMs: parseDurationMs(headers.get('x-ratelimit-reset-requests')),
  };
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
    const status = error.status ?? 0;
    const retryAfterMs = parseRetryAfterMs(error.headers as Headers | undefined);
    if (status === 429) {
      return new UpstreamError('rate_limited', provider, 'upstream rate limited', status, retryAfterMs);
    }
    if (status === 401 || status === 403 || status === 404) {
      return new UpstreamError(
        'misconfigured',
        provider,
        `upstream refused our credentials or model (${status})`,
        status,
      );
    }
    if (status === 408 || status === 409 || status >= 500) {
      return new UpstreamError('unavailable', provider, `upstream error ${status}`, status, retryAfterMs);
    }
    return new UpstreamError('rejected', provider, `upstream rejected the request (${status})`, status);
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
            { signal: request.signal },
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
          limits: readLimits(response.headers),
        };
      } catch (error) {
        throw toUpstreamError(error, name);
      }
    },
  };
}
