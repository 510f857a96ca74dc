import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { Completion, CompletionRequest, LlmProvider } from './types.js';
import { UpstreamError, upstreamErrorFromStatus } from './upstream-error.js';

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
    return upstreamErrorFromStatus(error.status ?? 0, error.headers, provider);
  }
  return new UpstreamError('unavailable', provider, 'unexpected upstream failure');
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
  const client = new OpenAI({
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
        const data = await client.chat.completions.create(
          {
            model: options.model,
            messages: request.messages.map((message) => ({ role: message.role, content: message.content })),
            max_tokens: request.maxTokens,
            temperature: request.temperature,
          },
          { signal: request.signal, timeout: Math.min(request.timeoutMs ?? options.timeoutMs, options.timeoutMs) },
        );
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
        };
      } catch (error) {
        throw toUpstreamErrorFromOpenAi(error, name);
      }
    },
  };
}
