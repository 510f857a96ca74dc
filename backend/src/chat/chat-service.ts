import { cacheKey } from '../cache/cache-key.js';
import type { CachedAnswer, ResponseCache } from '../cache/response-cache.js';
import { budgetExhausted, tooManyConcurrent } from '../errors.js';
import { estimateTokens } from '../llm/quota-governor.js';
import type { RequestCoalescer } from '../llm/request-coalescer.js';
import type { ChatMessage, CompletionGateway, GenerationParams, TokenUsage } from '../llm/types.js';
import { UpstreamError } from '../llm/upstream-error.js';
import type { CallerRef } from '../redis/caller-key.js';
import type { TokenBudget } from '../usage/token-budget.js';
import type { UserConcurrency } from '../usage/user-concurrency.js';
import type { ChatRequest } from './chat-request.js';
import { SYSTEM_PROMPT, SYSTEM_PROMPT_VERSION } from './system-prompt.js';

export interface ChatAnswer {
  response: string;
  cached: boolean;
  model: string;
  provider: string;
  usage: TokenUsage;
  /** True when an identical request in flight (on any instance) produced this answer. */
  coalesced: boolean;
  /** The upstream's finish_reason (stop, length…), when known. */
  finishReason?: string;
}

/** Everything that decides an answer: the messages as sent upstream and the sampling settings. */
export interface Generation {
  messages: readonly ChatMessage[];
  maxTokens: number;
  temperature: number;
  params?: GenerationParams;
  /** Names the system prompt (the coach's version), or the gateway's pass-through; part of the cache key. */
  promptVersion: string;
}

export interface ChatServiceOptions {
  cache: ResponseCache;
  gateway: CompletionGateway;
  maxTokens: number;
  temperature: number;
  /** Makes identical uncached questions in flight across the cluster cost one upstream call. */
  coalescer?: RequestCoalescer;
  /** Signed-in users' daily token budgets (reserved before the call, settled with the real usage). */
  budget?: TokenBudget;
  /** Signed-in users' cap on concurrent upstream calls, for synchronous requests. */
  concurrency?: UserConcurrency;
}

export interface AnswerOptions {
  signal?: AbortSignal;
  /**
   * How long this caller may wait for upstream quota. A synchronous request
   * waits briefly; a queued job passes 0 and is delayed instead when the
   * gateway answers UpstreamError('rate_limited', retryAfterMs).
   */
  maxQuotaWaitMs?: number;
  /** Who asks: a signed-in user's upstream calls spend their budget, and their cached answers are theirs. */
  caller?: CallerRef;
  /** Hold one of the user's concurrent-call slots during the upstream call (synchronous requests). */
  limitConcurrency?: boolean;
  /**
   * Stream the answer: each piece as the upstream sends it, or a cached answer
   * replayed in a few pieces. The promise still resolves with the whole answer.
   */
  onDelta?: (text: string) => void;
}

export interface ChatService {
  /** The coach: our system prompt before the user's history and message. */
  answer(request: ChatRequest, options?: AnswerOptions): Promise<ChatAnswer>;
  /** Any conversation as given (the OpenAI-compatible gateway), through the same cache, budgets and upstream. */
  complete(generation: Generation, options?: AnswerOptions): Promise<ChatAnswer>;
}

export function buildMessages(request: ChatRequest): ChatMessage[] {
  return [
    { role: 'system', content: SYSTEM_PROMPT },
    ...request.history.map((turn) => ({ role: turn.role, content: turn.content })),
    { role: 'user', content: request.message },
  ];
}

const fromCache = (hit: CachedAnswer, coalesced: boolean): ChatAnswer => ({
  response: hit.response,
  cached: true,
  model: hit.model,
  provider: hit.provider,
  usage: hit.usage,
  coalesced,
  finishReason: hit.finishReason,
});

/** A cached answer as a stream: a few words per piece, so a client sees it arrive as it would live. */
export function replayPieces(text: string, wordsPerPiece = 4): string[] {
  const words = text.match(/\S+\s*/g) ?? [text];
  const pieces: string[] = [];
  for (let index = 0; index < words.length; index += wordsPerPiece) {
    pieces.push(words.slice(index, index + wordsPerPiece).join(''));
  }
  return pieces;
}

/**
 * The one path every chat goes through, synchronous or queued: the cache
 * (the primary's answer first, then an alternate's), then the LLM, once per
 * question across the cluster when a coalescer is given.
 */
export function createChatService(options: ChatServiceOptions): ChatService {
  const { cache, gateway, maxTokens, temperature, coalescer, budget, concurrency } = options;

  /**
   * A user's upstream call holds a concurrency slot (when asked) and a budget
   * reservation of its estimate; the reservation settles with the real usage,
   * or is released when no answer came. Anonymous callers have neither: their
   * per-IP rate limit and the cluster quota bound them.
   */
  async function charged<T extends { usage: TokenUsage }>(
    generation: Generation,
    answerOptions: AnswerOptions,
    call: () => Promise<T>,
  ): Promise<T> {
    const user = answerOptions.caller?.kind === 'user' ? answerOptions.caller : undefined;
    if (!user) {
      return call();
    }
    const lease = answerOptions.limitConcurrency && concurrency ? await concurrency.acquire(user.key) : null;
    if (lease === undefined) {
      throw tooManyConcurrent();
    }
    try {
      if (!budget) {
        return await call();
      }
      const reserved = await budget.reserve(user.key, estimateTokens(generation.messages, generation.maxTokens));
      if (!reserved.ok) {
        throw budgetExhausted(reserved.retryAfterSeconds);
      }
      let result: T;
      try {
        result = await call();
      } catch (error) {
        // A stream cut after its first words spent tokens; any other failure spent none of the user's.
        const spent = error instanceof UpstreamError ? error.spentTokens : undefined;
        await (spent === undefined ? budget.release(reserved.reservation) : budget.settle(reserved.reservation, spent));
        throw error;
      }
      await budget.settle(reserved.reservation, result.usage.promptTokens + result.usage.completionTokens);
      return result;
    } finally {
      if (lease && concurrency) {
        await concurrency.release(lease);
      }
    }
  }

  async function complete(generation: Generation, answerOptions: AnswerOptions = {}): Promise<ChatAnswer> {
    const { messages, maxTokens: generationMaxTokens, temperature: generationTemperature, params } = generation;
    const targets = [gateway.target, ...(gateway.alternates ?? [])];
    const keys = targets.map((target) =>
      cacheKey({
        ...target,
        promptVersion: generation.promptVersion,
        messages,
        maxTokens: generationMaxTokens,
        temperature: generationTemperature,
        params,
      }),
    );
    const replayed = (answer: ChatAnswer): ChatAnswer => {
      if (answerOptions.onDelta) {
        for (const piece of replayPieces(answer.response)) {
          answerOptions.onDelta(piece);
        }
      }
      return answer;
    };
    const owner = answerOptions.caller?.kind === 'user' ? answerOptions.caller.key : undefined;
    // With one candidate and a coalescer, the lookup rides on the lock's command and the store on the unlock's.
    const folded = coalescer !== undefined && keys.length === 1;
    if (!folded) {
      const hit = await cache.get(keys);
      if (hit) {
        return replayed(fromCache(hit, false));
      }
    }
    /** The answer the coalescer stores with its unlock (folded path, the primary answered). */
    let toStore: CachedAnswer | undefined;

    const ask = async (): Promise<ChatAnswer> => {
      const completion = await charged(generation, answerOptions, () =>
        gateway.complete({
          messages,
          maxTokens: generationMaxTokens,
          temperature: generationTemperature,
          ...params,
          onDelta: answerOptions.onDelta,
          signal: answerOptions.signal,
          maxQuotaWaitMs: answerOptions.maxQuotaWaitMs,
        }),
      );
      // Stored under the namespace of whoever answered: a fallback answer never poses as the primary's.
      const answered = Math.max(
        0,
        targets.findIndex((target) => target.provider === completion.provider),
      );
      const cached: CachedAnswer = {
        response: completion.text,
        model: completion.model,
        provider: completion.provider,
        usage: completion.usage,
        finishReason: completion.finishReason,
        createdAt: Date.now(),
      };
      const key = keys[answered] as string;
      if (!folded || answered !== 0) {
        await cache.set(key, cached, owner);
      } else if (owner === undefined || (await cache.own(owner, key))) {
        toStore = cached;
      }
      return {
        response: completion.text,
        cached: false,
        model: completion.model,
        provider: completion.provider,
        usage: completion.usage,
        coalesced: false,
        finishReason: completion.finishReason,
      };
    };
    if (!coalescer) {
      return ask();
    }
    let asked = false;
    const entry = cache.entry(keys[0] as string);
    const { value } = await coalescer.run(
      keys[0] as string,
      () => {
        asked = true;
        return ask();
      },
      async () => {
        const answer = await cache.get(keys);
        return answer && fromCache(answer, true);
      },
      folded
        ? {
            redisKey: entry.redisKey,
            found: (raw) => {
              const hit = entry.read(raw);
              return hit && fromCache(hit, false);
            },
            store: () => (toStore ? { raw: entry.encode(toStore), ttlSeconds: entry.ttlSeconds } : undefined),
            failed: entry.failed,
            succeeded: entry.succeeded,
          }
        : undefined,
    );
    // The leader streamed live; whoever waited on it gets the answer replayed.
    return asked ? value : replayed(value);
  }

  return {
    answer(request, answerOptions) {
      return complete(
        { messages: buildMessages(request), maxTokens, temperature, promptVersion: SYSTEM_PROMPT_VERSION },
        answerOptions,
      );
    },
    complete,
  };
}
