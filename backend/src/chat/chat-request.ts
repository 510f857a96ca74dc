import { z } from 'zod';

export interface ChatLimits {
  maxMessageChars: number;
  maxHistoryMessages: number;
}

/**
 * The body of POST /api/chat and /api/chat/queue. History holds only user and
 * assistant turns: a client-supplied `system` turn would override our coach.
 */
export function chatRequestSchema(limits: ChatLimits) {
  const text = (what: string) =>
    z
      .string({ error: `${what} must be a string` })
      .trim()
      .min(1, `${what} must not be empty`)
      .max(limits.maxMessageChars, `${what} must be at most ${limits.maxMessageChars} characters`);

  return z.object({
    message: text('message'),
    history: z
      .array(
        z.object({
          role: z.enum(['user', 'assistant'], { error: 'history role must be "user" or "assistant"' }),
          content: text('history content'),
        }),
        { error: 'history must be an array of {role, content}' },
      )
      .max(limits.maxHistoryMessages, `history must have at most ${limits.maxHistoryMessages} messages`)
      .default([]),
  });
}

export type ChatRequest = z.infer<ReturnType<typeof chatRequestSchema>>;
