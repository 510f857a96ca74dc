export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** Sampling settings beyond maxTokens and temperature (the OpenAI-compatible routes pass them through). */
export interface GenerationParams {
  topP?: number;
  stop?: readonly string[];
  seed?: number;
  responseFormat?: 'json_object';
}

export interface CompletionRequest extends GenerationParams {
  messages: readonly ChatMessage[];
  maxTokens: number;
  temperature: number;
  /**
   * Stream the answer: called with each piece of text as the upstream sends
   * it. A failure before the first piece is retried or falls back like any
   * other; after it, it is an 'interrupted' UpstreamError.
   */
  onDelta?: (text: string) => void;
  signal?: AbortSignal;
  /** Upper bound on waiting for upstream quota (see AnswerOptions); undefined: the gateway's default. */
  maxQuotaWaitMs?: number;
  /** Shortens this one call's timeout (never beyond the adapter's own), so retries fit the gateway's budget. */
  timeoutMs?: number;
}

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/**
 * Rate-limit state an upstream reported with its answer (Groq's x-ratelimit-* headers).
 * Groq's *-tokens are per minute, its *-requests per day.
 */
export interface UpstreamLimits {
  limitTokens?: number;
  remainingTokens?: number;
  resetTokensMs?: number;
  limitRequests?: number;
  remainingRequests?: number;
  resetRequestsMs?: number;
}

export interface Completion {
  text: string;
  model: string;
  provider: string;
  usage: TokenUsage;
  /** The upstream's finish_reason (stop, length…), when it gave one. */
  finishReason?: string;
  limits?: UpstreamLimits;
}

/** One LLM endpoint (Groq, an OpenAI-compatible fallback…). Adapters do not retry. */
export interface LlmProvider {
  readonly name: string;
  readonly model: string;
  complete(request: CompletionRequest): Promise<Completion>;
}

export interface CompletionTarget {
  provider: string;
  model: string;
}

/**
 * Whatever answers a completion: a single provider, or a gateway with
 * quota, retries and fallback in front of several. `target` names the
 * provider and model the answer is expected from, `alternates` the others
 * that may answer instead; each has its own cache namespace, so answers of
 * different models are never mixed up.
 */
export interface CompletionGateway {
  readonly target: CompletionTarget;
  readonly alternates?: readonly CompletionTarget[];
  complete(request: CompletionRequest): Promise<Completion>;
}
