import type { Completion, CompletionRequest } from './types.js';
import { UpstreamError, upstreamErrorFromStatus } from './upstream-error.js';

/**
 * groq-sdk and openai are generated from the same template: the same error
 * classes (each SDK its own) and the same chat completion shape. One mapping
 * serves both adapters.
 */
type ErrorClass = abstract new (...args: never[]) => Error;

export interface SdkErrorClasses {
  APIConnectionTimeoutError: ErrorClass;
  APIUserAbortError: ErrorClass;
  APIConnectionError: ErrorClass;
  APIError: ErrorClass;
}

/** Translates an SDK's errors into our UpstreamError kinds. */
export function sdkErrorToUpstream(error: unknown, provider: string, sdk: SdkErrorClasses): UpstreamError {
  if (error instanceof UpstreamError) {
    return error;
  }
  // Order matters: the timeout and abort classes extend the connection class, which extends APIError.
  if (error instanceof sdk.APIConnectionTimeoutError) {
    return new UpstreamError('timeout', provider, 'upstream timed out');
  }
  if (error instanceof sdk.APIUserAbortError) {
    return new UpstreamError('timeout', provider, 'upstream call aborted');
  }
  if (error instanceof sdk.APIConnectionError) {
    return new UpstreamError('unavailable', provider, 'cannot reach upstream');
  }
  if (error instanceof sdk.APIError) {
    const { status, headers } = error as Error & { status?: number; headers?: Headers };
    return upstreamErrorFromStatus(status ?? 0, headers, provider);
  }
  return new UpstreamError('unavailable', provider, 'unexpected upstream failure');
}

/** The request body both SDKs take; optional settings only when set, so providers that lack them are not confused. */
export function chatCompletionBody(model: string, request: CompletionRequest) {
  return {
    model,
    messages: request.messages.map((message) => ({ role: message.role, content: message.content })),
    max_tokens: request.maxTokens,
    temperature: request.temperature,
    ...(request.topP === undefined ? {} : { top_p: request.topP }),
    ...(request.stop === undefined ? {} : { stop: [...request.stop] }),
    ...(request.seed === undefined ? {} : { seed: request.seed }),
    ...(request.responseFormat === undefined ? {} : { response_format: { type: request.responseFormat } }),
  };
}

interface ChatCompletionData {
  model?: string | null;
  choices: { message?: { content?: string | null } | null; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number | null; completion_tokens?: number | null } | null;
}

/** Our Completion from an SDK answer; an empty answer is a failure (never cached, retried or fallen back). */
export function toCompletion(data: ChatCompletionData, provider: string, model: string): Completion {
  const text = data.choices[0]?.message?.content ?? '';
  if (text.trim() === '') {
    throw new UpstreamError('unavailable', provider, 'upstream returned an empty answer');
  }
  return {
    text,
    model: data.model ?? model,
    provider,
    usage: {
      promptTokens: data.usage?.prompt_tokens ?? 0,
      completionTokens: data.usage?.completion_tokens ?? 0,
    },
    finishReason: data.choices[0]?.finish_reason ?? undefined,
  };
}
