import { redisScript } from '../redis/redis-script.js';

/**
 * Lua side of the per-user budget and concurrency limit. The time comes from
 * the caller (ARGV), not Redis TIME: the UTC day a request counts on is the one
 * the instance computed, and tests inject a clock. Instances' clocks differ by
 * far less than a lease, which is all pruning needs.
 */

const OPEN_TOKENS = `
local function open_tokens(held, leases, now)
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  local ids = redis.call('ZRANGE', leases, 0, -1)
  local open = 0
  if #ids > 0 then
    for _, value in ipairs(redis.call('HMGET', held, unpack(ids))) do
      if value then open = open + tonumber(value) end
    end
  end
  return open
end
`;

/**
 * Reserves `estimate` tokens of today's budget, or refuses.
 * KEYS: settled, held, leases (of today)
 * ARGV: id, estimate, budget, nowMs, leaseMs, ttlMs
 * Returns {granted 0|1, settled, open} (open: live reservations before this one).
 */
export const reserveScript = redisScript(`${OPEN_TOKENS}
local settled_key, held, leases = KEYS[1], KEYS[2], KEYS[3]
local id, estimate, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, lease, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local settled = tonumber(redis.call('GET', settled_key) or '0')
local open = open_tokens(held, leases, now)
if settled + open + estimate > budget then return {0, settled, open} end
redis.call('HSET', held, id, estimate)
redis.call('ZADD', leases, now + lease, id)
redis.call('PEXPIRE', held, ttl)
redis.call('PEXPIRE', leases, ttl)
return {1, settled, open}
`);

/**
 * Ends a reservation: its estimate stops counting and `actual` tokens are added
 * to the day's usage (0 for a release). Only the first settle of an id counts;
 * a lapsed lease still settles (the tokens were spent), until the day's keys expire.
 * KEYS: settled, held, leases   ARGV: id, actual, ttlMs
 * Returns 1 when it counted, 0 when the reservation was already gone.
 */
export const settleScript = redisScript(`
local settled_key, held, leases = KEYS[1], KEYS[2], KEYS[3]
local id, actual = ARGV[1], tonumber(ARGV[2])
if redis.call('HDEL', held, id) == 0 then return 0 end
redis.call('ZREM', leases, id)
if actual > 0 then
  redis.call('INCRBY', settled_key, actual)
  redis.call('PEXPIRE', settled_key, tonumber(ARGV[3]))
end
return 1
`);

/**
 * Takes one of a user's concurrent-call slots, pruning leases of crashed instances.
 * KEYS: inflight   ARGV: id, max, nowMs, leaseMs
 * Returns 1 when granted, 0 when the user already has `max` calls in flight.
 */
export const acquireScript = redisScript(`
local inflight, id, max = KEYS[1], ARGV[1], tonumber(ARGV[2])
local now, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
if redis.call('ZCARD', inflight) >= max then return 0 end
redis.call('ZADD', inflight, now + lease, id)
redis.call('PEXPIRE', inflight, lease)
return 1
`);
