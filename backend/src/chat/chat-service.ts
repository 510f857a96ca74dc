import type { CacheKeyInput } from '../cache/cache-key.js';
import { cacheKey } from '../cache/cache-key.js';
import type { ResponseCache } from '../cache/response-cache.js';
import type { ChatMessage, Completion, CompletionRequest, TokenUsage } from '../llm/types.js';
import type { ChatRequest } from './chat-request.js';
import { SYSTEM_PROMPT, SYSTEM_PROMPT_VERSION } from './system-prompt.js';

export interface ChatAnswer {
  response: string;
  cached: boolean;
  model: string;
  provider: string;
  usage: TokenUsage;
}

/**
 * Whatever answers a completion: a single provider, or a gateway with
 * quota, retries and fallback in front of several. `target` names the
 * provider and model the answer is expected from, for the cache key.
 */
export interface CompletionGateway {
  readonly target: { provider: string; model: string };
  complete(request: CompletionRequest): Promise<Completion>;
}

export interface ChatServiceOptions {
  cache: ResponseCache;
  gateway: CompletionGateway;
  maxTokens: number;
  temperature: number;
}

export interface AnswerOptions {
  signal?: AbortSignal;
  /**
   * How long this caller may wait for upstream quota. A synchronous request
   * waits briefly; a queued job passes 0 and is delayed instead when the
   * gateway answers UpstreamError('rate_limited', retryAfterMs).
   */
  maxQuotaWaitMs?: number;
}

export interface ChatService {
  answer(request: ChatRequest, options?: AnswerOptions): Promise<ChatAnswer>;
}

export function buildMessages(request: ChatRequest): ChatMessage[] {
  return [
    { role: 'system', content: SYSTEM_PROMPT },
    ...request.history.map((turn) => ({ role: turn.role, content: turn.content })),
    { role: 'user', content: request.message },
  ];
}

/** The one path every chat goes through, synchronous or queued: cache, then the LLM. */
export function createChatService(options: ChatServiceOptions): ChatService {
  const { cache, gateway, maxTokens, temperature } = options;

  return {
    async answer(request, answerOptions = {}) {
      const messages = buildMessages(request);
      const keyInput: CacheKeyInput = {
        ...gateway.target,
        promptVersion: SYSTEM_PROMPT_VERSION,
        messages,
        maxTokens,
        temperature,
      };
      const key = cacheKey(keyInput);
      const hit = await cache.get(key);
      if (hit) {
        return { response: hit.response, cached: true, model: hit.model, provider: hit.provider, usage: hit.usage };
      }

      const completion = await gateway.complete({
        messages,
        maxTokens,
        temperature,
        signal: answerOptions.signal,
        maxQuotaWaitMs: answerOptions.maxQuotaWaitMs,
      });
      await cache.set(key, {
        response: completion.text,
        model: completion.model,
        provider: completion.provider,
        usage: completion.usage,
        createdAt: Date.now(),
      });
      return {
        response: completion.text,
        cached: false,
        model: completion.model,
        provider: completion.provider,
        usage: completion.usage,
      };
    },
  };
}
