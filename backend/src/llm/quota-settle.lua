--! keys: 1
--! include: quota-window.lua
local k = quota_keys(KEYS[1], ARGV[8])
local log, tokens, sum, inflight = k.log, k.tokens, k.sum, k.inflight
local id, mode = ARGV[1], ARGV[2]

-- What the upstream's headers said (ARGV[9..15]; none when it sent none): limits lower than
-- configured, and what it counts beyond our own window, which is someone else's usage.
local function observe()
  if not ARGV[9] then return end
  local tpm, rpd, ttl = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[6])
  local limitTokens, remainingTokens, resetTokens = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
  local limitRequests, remainingRequests = tonumber(ARGV[14]), tonumber(ARGV[15])
  if limitTokens > 0 and (tpm <= 0 or limitTokens < tpm) then
    redis.call('SET', k.tpm, limitTokens, 'PX', ttl)
    tpm = limitTokens
  end
  if limitRequests > 0 and (rpd <= 0 or limitRequests < rpd) then
    redis.call('SET', k.rpd, limitRequests, 'PX', ttl)
    rpd = limitRequests
  end
  if tpm > 0 and remainingTokens >= 0 then
    local others = tpm - remainingTokens - tonumber(redis.call('GET', sum) or '0')
    if others > 0 then
      redis.call('SET', k.shadow, others, 'PX', math.max(1000, resetTokens))
    else
      redis.call('DEL', k.shadow)
    end
  end
  if rpd > 0 and remainingRequests >= 0 then
    local usedToday = rpd - remainingRequests
    if usedToday > tonumber(redis.call('GET', k.day_requests) or '0') then
      redis.call('SET', k.day_requests, usedToday, 'EX', 172800)
    end
  end
end

redis.call('ZREM', inflight, id)
local held = redis.call('HGET', tokens, id)
if mode == 'used' then
  if held then
    local delta = tonumber(ARGV[3]) - tonumber(held)
    redis.call('HSET', tokens, id, ARGV[3])
    redis.call('INCRBY', sum, delta)
    redis.call('INCRBY', k.day_tokens, delta)
    redis.call('ZADD', log, 'XX', now, id)
  else
    -- Evicted while its call outlived the window: the upstream counts it from now all the same.
    redis.call('HSET', tokens, id, ARGV[3])
    redis.call('INCRBY', sum, ARGV[3])
    redis.call('ZADD', log, now, id)
    for _, key in ipairs({log, tokens, sum}) do redis.call('PEXPIRE', key, tonumber(ARGV[7]) * 2) end
  end
  observe()
  return 1
end
if held then
  redis.call('HDEL', tokens, id)
  redis.call('ZREM', log, id)
  redis.call('DECRBY', sum, tonumber(held))
  redis.call('DECRBY', k.day_tokens, tonumber(held))
  redis.call('DECR', k.day_requests)
end
local pauseMs = tonumber(ARGV[4])
if pauseMs > 0 and pauseMs > redis.call('PTTL', k.pause) then redis.call('SET', k.pause, '1', 'PX', pauseMs) end
if ARGV[5] == '1' then
  evict(log, tokens, sum, tonumber(ARGV[7]))
  redis.call('SET', k.rpm, math.max(1, redis.call('ZCARD', log)), 'PX', tonumber(ARGV[6]))
end
observe()
return 1
