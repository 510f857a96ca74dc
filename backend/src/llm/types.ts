import type { Logger } from '../telemetry/logger.js';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface CompletionRequest {
  messages: readonly ChatMessage[];
  maxTokens: number;
  temperature: number;
  signal?: AbortSignal;
  /** Upper bound on waiting for upstream quota (see AnswerOptions); undefined: the gateway's default. */
  maxQuotaWaitMs?: number;
  /** The caller's logger (carries its request id), for the gateway's decisions. */
  log?: Logger;
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
  limits?: UpstreamLimits;
}

/** One LLM endpoint (Groq, an OpenAI-compatible fallback…). Adapters do not retry. */
export interface LlmProvider {
  readonly name: string;
  readonly model: string;
  complete(request: CompletionRequest): Promise<Completion>;
}
