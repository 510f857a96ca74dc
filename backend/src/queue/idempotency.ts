import { createHash } from 'node:crypto';
import type { ChatRequest } from '../chat/chat-request.js';
import { invalidRequest } from '../errors.js';

// Room for a UUID, a ULID or a client's own scheme; nothing that could break a log line or a key.
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{8,128}$/;

/** The Idempotency-Key header, if sent; a malformed one is a 400, never silently ignored. */
export function parseIdempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined || header === '') {
    return undefined;
  }
  if (!IDEMPOTENCY_KEY.test(header)) {
    throw invalidRequest('Idempotency-Key must be 8 to 128 characters: letters, digits and . _ : - only.');
  }
  return header;
}

const digest = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 22);

/** The key as stored in Redis: hashed, so its length and content never shape our key names. */
export const idempotencySlot = (key: string) => digest(key);

/** What a replay must match: the same key with another body is a client bug, not a retry. */
export const requestFingerprint = (request: ChatRequest) => digest(JSON.stringify(request));
