import { cacheKey } from '../cache/cache-key.js';
import type { CachedAnswer, ResponseCache } from '../cache/response-cache.js';
import { budgetExhausted, tooManyConcurrent } from '../errors.js';
import { estimateTokens } from '../llm/quota-governor.js';
import type { RequestCoalescer } from '../llm/request-coalescer.js';
import type { ChatMessage, CompletionGateway, CompletionTarget, GenerationParams, TokenUsage } from '../llm/types.js';
import { UpstreamError } from '../llm/upstream-error.js';
import type { CallerRef } from '../redis/caller-key.js';
import type { TokenBudget } from '../usage/token-budget.js';
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
  /**
   * Signed-in users' daily token budgets (reserved before the call, settled
   * with the real usage) and cap on concurrent upstream calls (synchronous requests).
   */
  budget?: TokenBudget;
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
  const complete = (generation: Generation, answerOptions: AnswerOptions = {}) =>
    completeChat(prepare(options, generation, answerOptions));
  return {
    answer(request, answerOptions) {
      const { maxTokens, temperature } = options;
      const generation = {
        messages: buildMessages(request),
        maxTokens,
        temperature,
        promptVersion: SYSTEM_PROMPT_VERSION,
      };
      return complete(generation, answerOptions);
    },
    complete,
  };
}

/** One chat on its way through the service: what each of its steps shares. */
interface Chat {
  service: ChatServiceOptions;
  generation: Generation;
  options: AnswerOptions;
  /** The primary, then the alternates. */
  targets: readonly CompletionTarget[];
  /** The question's cache key under each target's namespace, in the same order. */
  keys: readonly string[];
  /** A signed-in user's CallerRef key: the answers stored from their conversation are theirs. */
  owner: string | undefined;
  /** One cache candidate and a coalescer: the lookup rides on the lock's command and the store on the unlock's. */
  folded: boolean;
  /** The answer the coalescer stores with its unlock (folded path, the primary answered). */
  toStore?: CachedAnswer;
}

function prepare(service: ChatServiceOptions, generation: Generation, options: AnswerOptions): Chat {
  const { gateway, coalescer } = service;
  const { messages, maxTokens, temperature, params, promptVersion } = generation;
  const targets = [gateway.target, ...(gateway.alternates ?? [])];
  const keys = targets.map((target) =>
    cacheKey({ ...target, promptVersion, messages, maxTokens, temperature, params }),
  );
  const owner = options.caller?.kind === 'user' ? options.caller.key : undefined;
  return { service, generation, options, targets, keys, owner, folded: coalescer !== undefined && keys.length === 1 };
}

/** Look up, then ask the upstream: alone, or once for every identical question in flight. */
async function completeChat(chat: Chat): Promise<ChatAnswer> {
  if (!chat.folded) {
    const hit = await chat.service.cache.get(chat.keys);
    if (hit) {
      return replayed(chat, fromCache(hit, false));
    }
  }
  const { coalescer } = chat.service;
  return coalescer ? coalesced(chat, coalescer) : ask(chat);
}

/** An answer this caller did not see arrive (cached, or another's call): replayed as a stream when asked. */
function replayed(chat: Chat, answer: ChatAnswer): ChatAnswer {
  const { onDelta } = chat.options;
  if (onDelta) {
    for (const piece of replayPieces(answer.response)) {
      onDelta(piece);
    }
  }
  return answer;
}

async function coalesced(chat: Chat, coalescer: RequestCoalescer): Promise<ChatAnswer> {
  const { cache } = chat.service;
  const key = chat.keys[0] as string;
  let asked = false;
  const entry = cache.entry(key);
  const { value } = await coalescer.run(
    key,
    () => {
      asked = true;
      return ask(chat);
    },
    async () => {
      const answer = await cache.get(chat.keys);
      return answer && fromCache(answer, true);
    },
    chat.folded
      ? {
          redisKey: entry.redisKey,
          found: (raw) => {
            const hit = entry.read(raw);
            return hit && fromCache(hit, false);
          },
          store: () => (chat.toStore ? { raw: entry.encode(chat.toStore), ttlSeconds: entry.ttlSeconds } : undefined),
          failed: entry.failed,
          succeeded: entry.succeeded,
        }
      : undefined,
  );
  // The leader streamed live; whoever waited on it gets the answer replayed.
  return asked ? value : replayed(chat, value);
}

/** The upstream call, charged to the user, then its answer stored. */
async function ask(chat: Chat): Promise<ChatAnswer> {
  const { messages, maxTokens, temperature, params } = chat.generation;
  const { onDelta, signal, maxQuotaWaitMs } = chat.options;
  const { result: completion, listed } = await charged(chat, () =>
    chat.service.gateway.complete({ messages, maxTokens, temperature, ...params, onDelta, signal, maxQuotaWaitMs }),
  );
  const answer: CachedAnswer = {
    response: completion.text,
    model: completion.model,
    provider: completion.provider,
    usage: completion.usage,
    finishReason: completion.finishReason,
    createdAt: Date.now(),
  };
  await store(chat, answer, listed);
  const { response, model, provider, usage, finishReason } = answer;
  return { response, cached: false, model, provider, usage, coalesced: false, finishReason };
}

/**
 * A user's upstream call holds a budget reservation of its estimate and, when
 * asked, a concurrency slot (one script); both end with the real usage, or no
 * usage when no answer came (one script, which also lists the answer under its
 * owner: `listed`). Anonymous callers have neither: their per-IP rate limit and
 * the cluster quota bound them.
 */
async function charged<T extends { usage: TokenUsage; provider: string }>(
  chat: Chat,
  call: () => Promise<T>,
): Promise<{ result: T; listed: boolean }> {
  const { budget, cache } = chat.service;
  const { caller, limitConcurrency } = chat.options;
  if (caller?.kind !== 'user' || !budget) {
    return { result: await call(), listed: false };
  }
  const estimate = estimateTokens(chat.generation.messages, chat.generation.maxTokens);
  const reserved = await budget.reserve(caller.key, estimate, { slot: limitConcurrency === true });
  if (!reserved.ok) {
    throw reserved.reason === 'concurrency' ? tooManyConcurrent() : budgetExhausted(reserved.retryAfterSeconds);
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
  const tokens = result.usage.promptTokens + result.usage.completionTokens;
  const listing = chat.owner === undefined ? undefined : cache.listing(chat.owner, answerKey(chat, result.provider));
  return { result, listed: await budget.settle(reserved.reservation, tokens, listing) };
}

/** The cache key of an answer: under the namespace of whoever answered, so a fallback answer never poses as the primary's. */
function answerKey(chat: Chat, provider: string): string {
  const answered = Math.max(
    0,
    chat.targets.findIndex((target) => target.provider === provider),
  );
  return chat.keys[answered] as string;
}

/** Stored, listed under its owner first (unless the budget's settlement `listed` it already). */
async function store(chat: Chat, answer: CachedAnswer, listed: boolean): Promise<void> {
  const { cache } = chat.service;
  const key = answerKey(chat, answer.provider);
  const owner = listed ? undefined : chat.owner;
  if (!chat.folded || key !== chat.keys[0]) {
    await cache.set(key, answer, owner);
  } else if (owner === undefined || (await cache.own(owner, key))) {
    chat.toStore = answer;
  }
}
