import { redisScript } from '../redis/redis-script.js';

/**
 * Lua side of the per-user budget and concurrency cap: one script before a
 * user's upstream call, one after it. The time comes from the caller (ARGV),
 * not Redis TIME: the UTC day a request counts on is the one the instance
 * computed, and tests inject a clock. Instances' clocks differ by far less
 * than a lease, which is all pruning needs.
 */

/**
 * Takes one of the user's `slots` concurrent-call slots (none asked when 0),
 * pruning leases of crashed instances, then reserves `estimate` tokens of
 * today's budget (nothing held when the budget is 0, unlimited); or refuses.
 * KEYS: the user's base (usage-keys.ts userBase), from which the script names
 * today's settled, held and leases, and inflight (usage-keys.lua)
 * ARGV: id, estimate, budget, nowMs, leaseMs, ttlMs, slots, day
 * Returns {granted, settled, open}: granted 1, 0 (budget) or -1 (every slot
 * taken); open: live reservations before this one.
 */
export const reserveScript = redisScript(new URL('./budget-reserve.lua', import.meta.url));

/**
 * Ends a call: its slot is freed, its estimate stops counting and `actual`
 * tokens are added to the day's usage (0 for a release). Only the first settle
 * of an id counts; a lapsed lease still settles (the tokens were spent), until
 * the day's keys expire. A second key, a set of the user's (their hash tag),
 * gets ARGV member with ARGV seconds of expiry first: the settlement carries
 * that write instead of a round trip of its own.
 * KEYS: the user's base[, set]   ARGV: id, actual, ttlMs, day[, member, seconds]
 * Returns 1 when tokens counted, 0 when no reservation was held.
 */
export const settleScript = redisScript(new URL('./budget-settle.lua', import.meta.url));
