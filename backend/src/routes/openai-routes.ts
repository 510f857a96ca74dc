import Router from '@koa/router';
import type { z } from 'zod';
import type { ChatAnswer, ChatService } from '../chat/chat-service.js';
import {
  firstProblem,
  GatewayParamError,
  type GatewayRequest,
  type gatewayRequestSchema,
} from '../chat/openai-request.js';
import { AppError, internalError, upstreamToAppError } from '../errors.js';
import type { AppContext, AppMiddleware, AppState } from '../http/app-state.js';
import { type EventSink, eventStream } from '../http/event-stream.js';
import { isUpstreamError } from '../llm/upstream-error.js';
import type { CallerKeys } from '../redis/caller-key.js';
import { type SafetyCheck, safetyAnswer } from '../safety/index.js';
import type { Metrics } from '../telemetry/metrics.js';

/**
 * The OpenAI/Groq-compatible gateway: POST /v1/chat/completions and
 * GET /v1/models, also under /openai/v1 (groq-sdk's paths), so code written
 * for Groq or OpenAI only changes its base URL to get our cache, limits,
 * budgets, quota governor and fallback. The caller's messages go upstream as
 * they are: this is the gateway, not the coach, and has no system prompt.
 */

export const GATEWAY_PROMPT_VERSION = 'gateway-v1';
const PREFIXES = ['/v1', '/openai/v1'];

export interface OpenAiRoutesOptions {
  chat: ChatService;
  /** Identity and the caller's rate limit, as on the chat routes. */
  guard: readonly AppMiddleware[];
  /** The JSON body reader (its 4xx then come in OpenAI's shape). */
  body: AppMiddleware;
  schema: ReturnType<typeof gatewayRequestSchema>;
  /** The model callers name; the fallback, if any, answers under it when the primary cannot. */
  model: string;
  defaultMaxTokens: number;
  defaultTemperature: number;
  heartbeatMs: number;
  metrics: Metrics;
  /** The crisis check on the caller's last user message (SAFETY_ON_GATEWAY); absent, none. */
  safety?: SafetyCheck;
  /** Names the caller in Redis (job owners, counters), keyed: see redis/caller-key.ts. */
  callerKeys: CallerKeys;
}

interface OpenAiError {
  status: number;
  headers: Readonly<Record<string, string>>;
  body: { error: { message: string; type: string; code: string | null; param: string | null } };
}

/** OpenAI's error type for a status: what its SDKs expect beside the status they map to error classes. */
function errorType(status: number, code: string): string {
  if (status === 429) {
    return code === 'budget_exhausted' ? 'tokens' : 'requests';
  }
  if (status === 401) {
    return 'authentication_error';
  }
  if (status === 403) {
    return 'permission_error';
  }
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

/** Any error of the gateway in OpenAI's shape (the app routes keep ours). */
export function toOpenAiError(error: unknown, log: AppContext['state']['log']): OpenAiError {
  if (error instanceof GatewayParamError) {
    return {
      status: 400,
      headers: {},
      body: {
        error: { message: error.message, type: 'invalid_request_error', code: 'invalid_parameter', param: error.param },
      },
    };
  }
  let appError: AppError;
  if (error instanceof AppError) {
    appError = error;
  } else if (isUpstreamError(error)) {
    appError = upstreamToAppError(error);
  } else {
    log.error({ err: error }, 'unhandled error');
    appError = internalError();
  }
  const param = appError.code === 'model_not_found' ? 'model' : null;
  return {
    status: appError.status,
    headers: appError.headers,
    body: {
      error: { message: appError.message, type: errorType(appError.status, appError.code), code: appError.code, param },
    },
  };
}

function openAiErrors(): AppMiddleware {
  return async function openAiErrorsMiddleware(ctx, next) {
    try {
      await next();
    } catch (error) {
      const rendered = toOpenAiError(error, ctx.state.log);
      ctx.status = rendered.status;
      for (const [name, value] of Object.entries(rendered.headers)) {
        ctx.set(name, value);
      }
      ctx.body = rendered.body;
    }
  };
}

const modelNotFound = (model: string) =>
  new AppError(404, 'model_not_found', `The model '${model}' does not exist or you do not have access to it.`);

function completionId(requestId: string): string {
  return `chatcmpl-${requestId.replace(/[^A-Za-z0-9]/g, '').slice(0, 32)}`;
}

function usageOf(answer: ChatAnswer) {
  const { promptTokens, completionTokens } = answer.usage;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

/** What a gateway answer says beyond OpenAI's fields: where it came from. */
const focusInfo = (answer: ChatAnswer) => ({
  cached: answer.cached,
  coalesced: answer.coalesced,
  provider: answer.provider,
});

const modelCard = (model: string) => ({
  id: model,
  object: 'model',
  created: 0,
  owned_by: 'focus-gateway',
  active: true,
});

export function openAiRoutes(options: OpenAiRoutesOptions): Router<AppState> {
  const router = new Router<AppState>();
  const completions = (ctx: AppContext) => completion(options, ctx);
  const models = (ctx: AppContext) => {
    ctx.body = { object: 'list', data: [modelCard(options.model)] };
  };
  for (const prefix of PREFIXES) {
    router.post(`${prefix}/chat/completions`, openAiErrors(), ...options.guard, options.body, completions);
    router.get(`${prefix}/models`, openAiErrors(), ...options.guard, models);
    router.get(`${prefix}/models/:model`, openAiErrors(), ...options.guard, (ctx) => {
      if (ctx.params.model !== options.model) {
        throw modelNotFound(ctx.params.model ?? '');
      }
      ctx.body = modelCard(options.model);
    });
  }
  return router;
}

/** What every piece of one completion's answer repeats. */
interface Reply {
  id: string;
  created: number;
  model: string;
}

/** The upstream's answer, or for a crisis message the fixed safety answer (in one piece when streamed). */
type AnswerWith = (streaming?: {
  signal: AbortSignal;
  onDelta: (text: string) => void;
}) => Promise<ChatAnswer & { safety?: unknown }>;

/** POST /v1/chat/completions: parse, the crisis check, then the answer whole or streamed. */
async function completion(options: OpenAiRoutesOptions, ctx: AppContext): Promise<void> {
  const request = parse(options, ctx);
  const reply: Reply = {
    id: completionId(ctx.state.requestId),
    created: Math.floor(Date.now() / 1000),
    model: options.model,
  };
  const verdict = await crisisCheck(options, ctx, request);
  const answerWith = answerer(options, ctx, request, verdict);
  if (request.stream) {
    await streamed(options, ctx, reply, request.includeUsage, answerWith);
  } else {
    await whole(ctx, reply, answerWith);
  }
}

function parse(options: OpenAiRoutesOptions, ctx: AppContext): GatewayRequest {
  const result = options.schema.safeParse((ctx.request as { body?: unknown }).body);
  if (!result.success) {
    throw firstProblem(result.error as z.ZodError);
  }
  if (result.data.model !== options.model) {
    throw modelNotFound(result.data.model);
  }
  return result.data;
}

/** The last user message and the turns before it, as the app's routes are checked. */
async function crisisCheck(options: OpenAiRoutesOptions, ctx: AppContext, request: GatewayRequest) {
  const last = request.messages.map((turn) => turn.role).lastIndexOf('user');
  if (!options.safety || last < 0) {
    return undefined;
  }
  const verdict = await options.safety.check({
    message: (request.messages[last] as { content: string }).content,
    history: request.messages.slice(0, last),
    acceptLanguage: ctx.get('Accept-Language') || undefined,
  });
  if (verdict) {
    ctx.state.safety = verdict;
    ctx.set('Cache-Control', 'no-store');
  }
  return verdict;
}

function answerer(
  options: OpenAiRoutesOptions,
  ctx: AppContext,
  request: GatewayRequest,
  verdict: Awaited<ReturnType<typeof crisisCheck>>,
): AnswerWith {
  const generation = {
    messages: request.messages,
    maxTokens: request.maxTokens ?? options.defaultMaxTokens,
    temperature: request.temperature ?? options.defaultTemperature,
    params: { topP: request.topP, stop: request.stop, seed: request.seed, responseFormat: request.responseFormat },
    promptVersion: GATEWAY_PROMPT_VERSION,
  };
  const answerOptions = { caller: options.callerKeys.ref(ctx.state.caller), limitConcurrency: true };
  return async (streaming) => {
    if (verdict) {
      const fixed = safetyAnswer(verdict);
      streaming?.onDelta(fixed.response);
      return fixed;
    }
    return options.chat.complete(generation, { ...answerOptions, ...streaming });
  };
}

/** A chat.completion in one JSON body. */
async function whole(ctx: AppContext, reply: Reply, answerWith: AnswerWith): Promise<void> {
  const answer = await answerWith();
  ctx.state.cacheHit = answer.cached;
  ctx.set('X-Focus-Cache', answer.cached ? 'hit' : 'miss');
  ctx.body = {
    id: reply.id,
    object: 'chat.completion',
    created: reply.created,
    model: reply.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: answer.response },
        finish_reason: answer.finishReason ?? 'stop',
        logprobs: null,
      },
    ],
    usage: usageOf(answer),
    system_fingerprint: null,
    x_focus: focusInfo(answer),
  };
}

const chunk = (reply: Reply, choices: unknown[], extra: Record<string, unknown> = {}) =>
  `data: ${JSON.stringify({ id: reply.id, object: 'chat.completion.chunk', created: reply.created, model: reply.model, system_fingerprint: null, choices, ...extra })}\n\n`;

/** A stream of chat.completion.chunk events. */
async function streamed(
  options: OpenAiRoutesOptions,
  ctx: AppContext,
  reply: Reply,
  includeUsage: boolean,
  answerWith: AnswerWith,
): Promise<void> {
  let outcome: 'done' | 'error' = 'done';
  await eventStream(
    ctx,
    async (sink, signal) => {
      outcome = await writeChunks(ctx, reply, includeUsage, answerWith, sink, signal);
    },
    {
      heartbeatMs: options.heartbeatMs,
      onEnd: (how) =>
        options.metrics.streams.inc({
          route: '/v1/chat/completions',
          outcome: how === 'abandoned' ? 'abandoned' : outcome,
        }),
    },
  );
}

/** A chunk per piece as the upstream sends it, then the finish with its usage, and [DONE]; an error event after a cut. */
async function writeChunks(
  ctx: AppContext,
  reply: Reply,
  includeUsage: boolean,
  answerWith: AnswerWith,
  sink: EventSink,
  signal: AbortSignal,
): Promise<'done' | 'error'> {
  let sent = false;
  try {
    const answer = await answerWith({
      signal,
      onDelta: (text) => {
        // The first chunk carries the role, as OpenAI's do.
        const delta = sent ? { content: text } : { role: 'assistant', content: text };
        sent = true;
        sink.write(chunk(reply, [{ index: 0, delta, finish_reason: null, logprobs: null }]));
      },
    });
    ctx.state.cacheHit = answer.cached;
    // Groq's SDK reads usage from x_groq on the finishing chunk; OpenAI's from a last chunk when asked.
    sink.write(
      chunk(reply, [{ index: 0, delta: {}, finish_reason: answer.finishReason ?? 'stop', logprobs: null }], {
        x_groq: { id: reply.id, usage: usageOf(answer) },
        x_focus: focusInfo(answer),
      }),
    );
    if (includeUsage) {
      sink.write(chunk(reply, [], { usage: usageOf(answer) }));
    }
    sink.write('data: [DONE]\n\n');
    return 'done';
  } catch (error) {
    if (!sent) {
      throw error;
    }
    // Never [DONE] after a cut: the SDKs then raise instead of returning half an answer as whole.
    sink.write(`data: ${JSON.stringify(toOpenAiError(error, ctx.state.log).body)}\n\n`);
    return 'error';
  }
}
