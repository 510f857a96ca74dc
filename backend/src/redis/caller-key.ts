import { createHash } from 'node:crypto';

/**
 * How a caller ("user:<id>" or "ip:<address>") is named inside Redis (job
 * owners, active users, per-user counters): the same from every instance, and
 * never the id itself, so a key listing shows no user id.
 */
export function hashCaller(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 16);
}

/** A caller as the layers below HTTP see it: signed-in user or anonymous IP, by its Redis name. */
export interface CallerRef {
  kind: 'user' | 'ip';
  /** hashCaller(caller id). */
  key: string;
}

export const callerRef = (caller: { kind: 'user' | 'ip'; id: string }): CallerRef => ({
  kind: caller.kind,
  key: hashCaller(caller.id),
});
