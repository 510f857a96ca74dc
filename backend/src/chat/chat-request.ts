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
    /** The app's language tag ("es-ES"): the safety answer's language and country resources (SAFETY.md). */
    locale: z
      .string({ error: 'locale must be a string' })
      .trim()
      .max(35, 'locale must be at most 35 characters')
      .regex(/^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,4}$/, 'locale must be a language tag such as "es-ES"')
      .optional(),
  });
}

export type ChatRequest = z.infer<ReturnType<typeof chatRequestSchema>>;
