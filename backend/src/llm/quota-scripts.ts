import { redisScript } from '../redis/redis-script.js';

/**
 * Lua scripts of the quota governor. Each runs atomically in Redis and reads
 * the time from Redis (TIME), so every instance shares one clock.
 *
 * Keys of one provider (all under one hash tag, so a cluster keeps them together):
 *   log       ZSET  reservation id -> time it counts from (reserved, then completed)
 *   tokens    HASH  reservation id -> tokens it holds (estimate, then real usage)
 *   sum       STR   sum of `tokens` over `log`
 *   inflight  ZSET  reservation id -> time after which it is presumed lost (instance died)
 *   shadow    STR   tokens someone else spent on the key (learned from headers), with a TTL
 *   pause     STR   present while the upstream told us to stop (429 retry-after), with a TTL
 *   learned:rpm / learned:tpm / learned:rpd   limits lower than configured, with a TTL
 *   day:<n>:requests / day:<n>:tokens         counters of the UTC day n
 */

/** Shared preamble: the clock and eviction of entries older than the window. */
const PRELUDE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function evict(log, tokens, sum, window)
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', now - window, 'LIMIT', 0, 500)
  if #old > 0 then
    local freed = 0
    for _, value in ipairs(redis.call('HMGET', tokens, unpack(old))) do
      if value then freed = freed + tonumber(value) end
    end
    redis.call('HDEL', tokens, unpack(old))
    redis.call('ZREM', log, unpack(old))
    redis.call('DECRBY', sum, freed)
  end
end
local function limit(configured, learnedKey)
  local learned = tonumber(redis.call('GET', learnedKey) or '0')
  if learned > 0 and (configured <= 0 or learned < configured) then return learned end
  return configured
end
`;

/**
 * Reserves one request and `cost` tokens, or says how long until there is room.
 * KEYS: log, tokens, sum, inflight, shadow, pause, learned:rpm, learned:tpm, learned:rpd, day:requests, day:tokens
 * ARGV: id, cost, rpm, tpm, rpd, tpd, windowMs, inflightTtlMs, pollMs
 * Returns {granted 0|1, waitMs, reason, remainingRequests, remainingTokens, rpm, tpm}
 * (remaining/limits are -1 when unlimited).
 */
export const RESERVE = redisScript(`${PRELUDE}
local log, tokens, sum, inflight, shadow, pause = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, cost, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[7])
local rpm = limit(tonumber(ARGV[3]), KEYS[7])
local tpm = limit(tonumber(ARGV[4]), KEYS[8])
local rpd = limit(tonumber(ARGV[5]), KEYS[9])
local tpd = tonumber(ARGV[6])
-- Larger than a whole minute (a learned limit can be below the estimate): it runs alone in an empty window.
if tpm > 0 and cost > tpm then cost = tpm end
evict(log, tokens, sum, window)
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)

local count = redis.call('ZCARD', log)
local used = tonumber(redis.call('GET', sum) or '0') + tonumber(redis.call('GET', shadow) or '0')
local function report(granted, wait, reason, extraRequests, extraTokens)
  local remainingRequests, remainingTokens = -1, -1
  if rpm > 0 then remainingRequests = math.max(0, rpm - count - extraRequests) end
  if tpm > 0 then remainingTokens = math.max(0, tpm - used - extraTokens) end
  return {granted, math.ceil(wait), reason, remainingRequests, remainingTokens, rpm > 0 and rpm or -1, tpm > 0 and tpm or -1}
end

local paused = redis.call('PTTL', pause)
if paused > 0 then return report(0, paused, 'paused', 0, 0) end

if rpm > 0 and count + 1 > rpm then
  local oldest = redis.call('ZRANGE', log, count - rpm, count - rpm, 'WITHSCORES')
  return report(0, math.max(1, tonumber(oldest[2]) + window - now), 'requests', 0, 0)
end

if tpm > 0 and used + cost > tpm then
  -- Calls in flight hold their estimate; their real usage is usually far
  -- smaller, so when they alone stand in the way, room comes soon: poll.
  local held = 0
  local flying = redis.call('ZRANGE', inflight, 0, -1)
  if #flying > 0 then
    for _, value in ipairs(redis.call('HMGET', tokens, unpack(flying))) do
      if value then held = held + tonumber(value) end
    end
  end
  if held > 0 and used - held + cost <= tpm then
    return report(0, tonumber(ARGV[9]), 'tokens', 0, 0)
  end
  -- Otherwise: when enough of the window's entries expire, or the shadow does.
  local shadowLeft = redis.call('PTTL', shadow)
  local shadowTokens = tonumber(redis.call('GET', shadow) or '0')
  local wait = math.max(1, shadowLeft)
  local freed = 0
  local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    freed = freed + tonumber(redis.call('HGET', tokens, entries[i]) or '0')
    if used - freed + cost <= tpm then
      wait = math.max(1, tonumber(entries[i + 1]) + window - now)
      break
    end
  end
  if shadowLeft > 0 and used - shadowTokens + cost <= tpm then wait = math.min(wait, shadowLeft) end
  return report(0, wait, 'tokens', 0, 0)
end

local untilTomorrow = 86400000 - (now % 86400000)
local dayRequests = tonumber(redis.call('GET', KEYS[10]) or '0')
local dayTokens = tonumber(redis.call('GET', KEYS[11]) or '0')
if rpd > 0 and dayRequests + 1 > rpd then return report(0, untilTomorrow, 'day_requests', 0, 0) end
if tpd > 0 and dayTokens + cost > tpd then return report(0, untilTomorrow, 'day_tokens', 0, 0) end

redis.call('ZADD', log, now, id)
redis.call('HSET', tokens, id, cost)
redis.call('INCRBY', sum, cost)
redis.call('ZADD', inflight, now + tonumber(ARGV[8]), id)
for _, key in ipairs({log, tokens, sum, inflight}) do redis.call('PEXPIRE', key, window * 2) end
redis.call('INCR', KEYS[10])
redis.call('INCRBY', KEYS[11], cost)
redis.call('EXPIRE', KEYS[10], 172800)
redis.call('EXPIRE', KEYS[11], 172800)
return report(1, 0, 'ok', 1, cost)
`);

/**
 * Settles a reservation once the call is over.
 * KEYS: log, tokens, sum, inflight, pause, learned:rpm, day:requests, day:tokens
 * ARGV: id, mode, tokens, pauseMs, learnRequests (0|1), learnedTtlMs, windowMs
 * mode "used": the call counts, with `tokens` (real usage); its window starts now, when
 *   the upstream has surely counted it (even when its reservation left the window meanwhile).
 * mode "release": the upstream refused it (429) and did not count it; `pauseMs` pauses
 *   every instance, and with learnRequests the requests-per-minute limit drops to what
 *   we had in the window when the upstream said no.
 */
export const SETTLE = redisScript(`${PRELUDE}
local log, tokens, sum, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, mode = ARGV[1], ARGV[2]
redis.call('ZREM', inflight, id)
local held = redis.call('HGET', tokens, id)
if mode == 'used' then
  if held then
    local delta = tonumber(ARGV[3]) - tonumber(held)
    redis.call('HSET', tokens, id, ARGV[3])
    redis.call('INCRBY', sum, delta)
    redis.call('INCRBY', KEYS[8], delta)
    redis.call('ZADD', log, 'XX', now, id)
  else
    -- Evicted while its call outlived the window: the upstream counts it from now all the same.
    redis.call('HSET', tokens, id, ARGV[3])
    redis.call('INCRBY', sum, ARGV[3])
    redis.call('ZADD', log, now, id)
    for _, key in ipairs({log, tokens, sum}) do redis.call('PEXPIRE', key, tonumber(ARGV[7]) * 2) end
  end
  return 1
end
if held then
  redis.call('HDEL', tokens, id)
  redis.call('ZREM', log, id)
  redis.call('DECRBY', sum, tonumber(held))
  redis.call('DECRBY', KEYS[8], tonumber(held))
  redis.call('DECR', KEYS[7])
end
local pauseMs = tonumber(ARGV[4])
if pauseMs > 0 and pauseMs > redis.call('PTTL', KEYS[5]) then redis.call('SET', KEYS[5], '1', 'PX', pauseMs) end
if ARGV[5] == '1' then
  evict(log, tokens, sum, tonumber(ARGV[7]))
  redis.call('SET', KEYS[6], math.max(1, redis.call('ZCARD', log)), 'PX', tonumber(ARGV[6]))
end
return 1
`);

/**
 * Follows what the upstream's headers say about the key, which other clients may share.
 * KEYS: sum, shadow, learned:tpm, learned:rpd, day:requests
 * ARGV: tpm, rpd, limitTokens, remainingTokens, resetTokensMs, limitRequestsPerDay,
 *       remainingRequestsToday, learnedTtlMs   (-1: header absent)
 */
export const OBSERVE = redisScript(`${PRELUDE}
local tpm, rpd = tonumber(ARGV[1]), tonumber(ARGV[2])
local limitTokens, remainingTokens, resetTokens = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local limitRequests, remainingRequests, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
if limitTokens > 0 and (tpm <= 0 or limitTokens < tpm) then
  redis.call('SET', KEYS[3], limitTokens, 'PX', ttl)
  tpm = limitTokens
end
if limitRequests > 0 and (rpd <= 0 or limitRequests < rpd) then
  redis.call('SET', KEYS[4], limitRequests, 'PX', ttl)
  rpd = limitRequests
end
if tpm > 0 and remainingTokens >= 0 then
  -- What the upstream counts beyond our own window is someone else's usage.
  local others = tpm - remainingTokens - tonumber(redis.call('GET', KEYS[1]) or '0')
  if others > 0 then
    redis.call('SET', KEYS[2], others, 'PX', math.max(1000, resetTokens))
  else
    redis.call('DEL', KEYS[2])
  end
end
if rpd > 0 and remainingRequests >= 0 then
  local usedToday = rpd - remainingRequests
  if usedToday > tonumber(redis.call('GET', KEYS[5]) or '0') then
    redis.call('SET', KEYS[5], usedToday, 'EX', 172800)
  end
end
return 1
`);
