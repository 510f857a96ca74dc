import { createHash } from 'node:crypto';
import type { ChatMessage } from '../llm/types.js';

export interface CacheKeyInput {
  provider: string;
  model: string;
  promptVersion: string;
  messages: readonly ChatMessage[];
  maxTokens: number;
  temperature: number;
}

/** Same meaning, same key: Unicode-normalised, trimmed, inner whitespace collapsed. */
export function normaliseText(text: string): string {
  return text.normalize('NFC').trim().replace(/\s+/g, ' ');
}

/** A hash of everything that decides the answer; no message text ends up in Redis keys. */
export function cacheKey(input: CacheKeyInput): string {
  const canonical = JSON.stringify([
    input.provider,
    input.model,
    input.promptVersion,
    input.maxTokens,
    input.temperature,
    input.messages.map((message) => [message.role, normaliseText(message.content)]),
  ]);
  return createHash('sha256').update(canonical).digest('base64url');
}
