import { redisScript } from '../redis/redis-script.js';

/**
 * Lua side of the per-user budget and concurrency limit. The time comes from
 * the caller (ARGV), not Redis TIME: the UTC day a request counts on is the one
 * the instance computed, and tests inject a clock. Instances' clocks differ by
 * far less than a lease, which is all pruning needs.
 */

/**
 * Reserves `estimate` tokens of today's budget, or refuses.
 * KEYS: settled, held, leases (of today)
 * ARGV: id, estimate, budget, nowMs, leaseMs, ttlMs
 * Returns {granted 0|1, settled, open} (open: live reservations before this one).
 */
export const reserveScript = redisScript(new URL('./budget-reserve.lua', import.meta.url));

/**
 * Ends a reservation: its estimate stops counting and `actual` tokens are added
 * to the day's usage (0 for a release). Only the first settle of an id counts;
 * a lapsed lease still settles (the tokens were spent), until the day's keys expire.
 * KEYS: settled, held, leases   ARGV: id, actual, ttlMs
 * Returns 1 when it counted, 0 when the reservation was already gone.
 */
export const settleScript = redisScript(new URL('./budget-settle.lua', import.meta.url));

/**
 * Takes one of a user's concurrent-call slots, pruning leases of crashed instances.
 * KEYS: inflight   ARGV: id, max, nowMs, leaseMs
 * Returns 1 when granted, 0 when the user already has `max` calls in flight.
 */
export const acquireScript = redisScript(new URL('./concurrency-acquire.lua', import.meta.url));
