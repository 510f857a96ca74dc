import { z } from 'zod';
import type { ChatMessage, GenerationParams } from '../llm/types.js';

/**
 * The body of POST /v1/chat/completions: OpenAI's shape, the fields we honour
 * and nothing else. A field we do not support (n > 1, tools, logprobs…) is a
 * 400 naming it, never dropped in silence: a caller relying on it must know.
 */

export interface GatewayLimits {
  /** Largest max_tokens a caller may ask for. */
  maxTokens: number;
  maxMessages: number;
  maxMessageChars: number;
}

export interface GatewayRequest extends GenerationParams {
  model: string;
  messages: ChatMessage[];
  maxTokens: number | undefined;
  temperature: number | undefined;
  stream: boolean;
  includeUsage: boolean;
}

/** A field outside the schema or a bad value, with the parameter to name in OpenAI's `param`. */
export class GatewayParamError extends Error {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(message);
    this.name = 'GatewayParamError';
  }
}

export function gatewayRequestSchema(limits: GatewayLimits) {
  const text = z.string().max(limits.maxMessageChars, `at most ${limits.maxMessageChars} characters`);
  // OpenAI accepts content as a string or as parts; text parts are all a chat model needs.
  const content = z.union([
    text,
    z
      .array(z.object({ type: z.literal('text', 'only text content parts are supported'), text }).strict())
      .min(1)
      .transform((parts) => parts.map((part) => part.text).join('')),
  ]);
  const message = z
    .object({
      // "developer" is OpenAI's new name for system; both reach the model as system.
      role: z.enum(['system', 'developer', 'user', 'assistant'], 'role must be system, developer, user or assistant'),
      content,
      name: z.string().max(64).optional(),
    })
    .strict();
  const tokens = z.number().int().min(1).max(limits.maxTokens, `at most ${limits.maxTokens}`);
  return z
    .object({
      model: z.string().min(1, 'model is required'),
      messages: z.array(message).min(1, 'messages must not be empty').max(limits.maxMessages),
      temperature: z.number().min(0).max(2).nullish(),
      top_p: z.number().gt(0).max(1).nullish(),
      max_tokens: tokens.nullish(),
      max_completion_tokens: tokens.nullish(),
      stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish(),
      seed: z.number().int().nullish(),
      response_format: z
        .object({ type: z.enum(['text', 'json_object'], 'response_format.type must be text or json_object') })
        .strict()
        .nullish(),
      // The caller's own end-user id (for its abuse tracking): accepted, never sent upstream, as we already know the caller.
      user: z.string().max(256).nullish(),
      stream: z.boolean().nullish(),
      stream_options: z.object({ include_usage: z.boolean().optional() }).strict().nullish(),
      n: z.literal(1, 'only n = 1 is supported').nullish(),
    })
    .strict()
    .transform(
      (body): GatewayRequest => ({
        model: body.model,
        messages: body.messages.map((turn) => ({
          role: turn.role === 'developer' ? 'system' : turn.role,
          content: turn.content,
        })),
        maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
        temperature: body.temperature ?? undefined,
        topP: body.top_p ?? undefined,
        stop: body.stop === undefined || body.stop === null ? undefined : [body.stop].flat(),
        seed: body.seed ?? undefined,
        responseFormat: body.response_format?.type === 'json_object' ? 'json_object' : undefined,
        stream: body.stream === true,
        includeUsage: body.stream_options?.include_usage === true,
      }),
    );
}

/** The first problem of a failed parse, as OpenAI reports it: the parameter, and what is wrong with it. */
export function firstProblem(error: z.ZodError): GatewayParamError {
  const issue = error.issues[0];
  if (!issue) {
    return new GatewayParamError('body', 'Invalid request body.');
  }
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? 'unknown';
    const param = [...issue.path, key].join('.');
    return new GatewayParamError(param, `Unsupported parameter: '${param}' is not supported by this gateway.`);
  }
  const param = issue.path.join('.') || 'body';
  return new GatewayParamError(param, `Invalid value for '${param}': ${issue.message}.`);
}
