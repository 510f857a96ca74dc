--! keys: 1
--! include: quota-window.lua
local k = quota_keys(KEYS[1], ARGV[10])
local log, tokens, sum, inflight, shadow, pause = k.log, k.tokens, k.sum, k.inflight, k.shadow, k.pause
local id, cost, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[7])
local rpm = limit(tonumber(ARGV[3]), k.rpm)
local tpm = limit(tonumber(ARGV[4]), k.tpm)
local rpd = limit(tonumber(ARGV[5]), k.rpd)
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
local dayRequests = tonumber(redis.call('GET', k.day_requests) or '0')
local dayTokens = tonumber(redis.call('GET', k.day_tokens) or '0')
if rpd > 0 and dayRequests + 1 > rpd then return report(0, untilTomorrow, 'day_requests', 0, 0) end
if tpd > 0 and dayTokens + cost > tpd then return report(0, untilTomorrow, 'day_tokens', 0, 0) end

redis.call('ZADD', log, now, id)
redis.call('HSET', tokens, id, cost)
redis.call('INCRBY', sum, cost)
redis.call('ZADD', inflight, now + tonumber(ARGV[8]), id)
for _, key in ipairs({log, tokens, sum, inflight}) do redis.call('PEXPIRE', key, window * 2) end
redis.call('INCR', k.day_requests)
redis.call('INCRBY', k.day_tokens, cost)
redis.call('EXPIRE', k.day_requests, 172800)
redis.call('EXPIRE', k.day_tokens, 172800)
return report(1, 0, 'ok', 1, cost)
