import { redisScript } from '../redis/redis-script.js';

/**
 * Lua scripts of the quota governor. Each runs atomically in Redis and reads
 * the time from Redis (TIME), so every instance shares one clock.
 *
 * Keys of one provider, all named in the scripts (quota-window.lua) from their
 * base "<prefix>quota:{<provider>}:", the one key a call sends: they share its
 * hash tag, so they lie in the base's cluster slot (BullMQ's scripts name
 * their job keys from a prefix the same way). Under the base:
 *   log       ZSET  reservation id -> time it counts from (reserved, then completed)
 *   tokens    HASH  reservation id -> tokens it holds (estimate, then real usage)
 *   sum       STR   sum of `tokens` over `log`
 *   inflight  ZSET  reservation id -> time after which it is presumed lost (instance died)
 *   shadow    STR   tokens someone else spent on the key (learned from headers), with a TTL
 *   pause     STR   present while the upstream told us to stop (429 retry-after), with a TTL
 *   learned:rpm / learned:tpm / learned:rpd   limits lower than configured, with a TTL
 *   day:<n>:requests / day:<n>:tokens         counters of the UTC day n
 */

/**
 * Reserves one request and `cost` tokens, or says how long until there is room.
 * KEYS: base   ARGV: id, cost, rpm, tpm, rpd, tpd, windowMs, inflightTtlMs, pollMs, day
 * Returns {granted 0|1, waitMs, reason, remainingRequests, remainingTokens, rpm, tpm}
 * (remaining/limits are -1 when unlimited).
 */
export const RESERVE = redisScript(new URL('./quota-reserve.lua', import.meta.url));

/**
 * Settles a reservation once the call is over, and follows what the upstream's
 * headers say about the key, which other clients may share (one script after
 * the call).
 * KEYS: base
 * ARGV: id, mode, tokens, pauseMs, learnRequests (0|1), learnedTtlMs, windowMs, day,
 *       then, when the upstream sent its headers: tpm, rpd, limitTokens,
 *       remainingTokens, resetTokensMs, limitRequestsPerDay, remainingRequestsToday
 *       (-1: header absent)
 * mode "used": the call counts, with `tokens` (real usage); its window starts now, when
 *   the upstream has surely counted it (even when its reservation left the window meanwhile).
 * mode "release": the upstream refused it (429) and did not count it; `pauseMs` pauses
 *   every instance, and with learnRequests the requests-per-minute limit drops to what
 *   we had in the window when the upstream said no. A call never sent releases too.
 */
export const SETTLE = redisScript(new URL('./quota-settle.lua', import.meta.url));
