/**
 * Where a user's usage lives in Redis (budget and concurrent calls), so that
 * forgetting a user can name every key. `userKey` is already a
 * hash (CallerRef.key); the braces make it a hash tag, so one user's keys share
 * a cluster slot and a Lua script may touch them together.
 */
export function userBase(prefix: string, userKey: string): string {
  return `${prefix}usage:{${userKey}}:`;
}

export const DAY_MS = 86_400_000;

/** The UTC day number of an epoch-ms time. */
export const utcDay = (now: number): number => Math.floor(now / DAY_MS);

/** Keys of one user's token budget for one UTC day. */
export function budgetKeys(prefix: string, userKey: string, day: number) {
  const base = `${userBase(prefix, userKey)}day:${day}:`;
  return {
    /** STRING: tokens settled on that day. */
    settled: `${base}settled`,
    /** HASH: reservation id -> estimate, until settled or released (kept after its lease lapses, for a late settle). */
    held: `${base}held`,
    /** ZSET: reservation id -> lease expiry (ms); only live leases count against the budget. */
    leases: `${base}leases`,
  };
}

/** ZSET of one user's upstream calls in flight: lease id -> lease expiry (ms). */
export const inflightKey = (prefix: string, userKey: string): string => `${userBase(prefix, userKey)}inflight`;
