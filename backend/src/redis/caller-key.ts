import { createHmac } from 'node:crypto';

/** A caller as the layers below HTTP see it: signed-in user or anonymous IP, by its Redis name. */
export interface CallerRef {
  kind: 'user' | 'ip';
  /** CallerKeys.hash(caller id). */
  key: string;
}

/**
 * How a caller ("user:<id>" or "ip:<address>") is named inside Redis: job
 * owners, active users, per-user counters, rate-limit and token-version keys.
 * An HMAC, never the id itself nor a plain hash of it (an IPv4 address's plain
 * hash is reversed by trying all 2^32); the same on every instance that shares
 * the key, so any of them finds a caller's keys (deleting an account too).
 */
export interface CallerKeys {
  hash(callerId: string): string;
  ref(caller: { kind: 'user' | 'ip'; id: string }): CallerRef;
}

/** Callers whose names are remembered: a request names its caller three or four times (limit, log, stats, owner). */
const REMEMBERED = 4096;

export function callerKeys(key: string | Uint8Array): CallerKeys {
  const remembered = new Map<string, string>();
  const hash = (callerId: string) => {
    let name = remembered.get(callerId);
    if (name === undefined) {
      name = createHmac('sha256', key).update(callerId).digest('hex').slice(0, 16);
      if (remembered.size >= REMEMBERED) {
        // The oldest first: a Map iterates in insertion order.
        remembered.delete(remembered.keys().next().value as string);
      }
      remembered.set(callerId, name);
    }
    return name;
  };
  return { hash, ref: (caller) => ({ kind: caller.kind, key: hash(caller.id) }) };
}
