-- Included by the quota scripts: the time now, the provider's key names, and eviction of entries older than the window.
local now = now_ms()
-- Named from their base ("<prefix>quota:{<provider>}:", the scripts' one key) and the UTC day:
-- they share its hash tag, so one cluster slot, and a call sends one name, not eleven.
local function quota_keys(base, day)
  return {
    log = base .. 'log', tokens = base .. 'tokens', sum = base .. 'sum', inflight = base .. 'inflight',
    shadow = base .. 'shadow', pause = base .. 'pause',
    rpm = base .. 'learned:rpm', tpm = base .. 'learned:tpm', rpd = base .. 'learned:rpd',
    day_requests = base .. 'day:' .. day .. ':requests', day_tokens = base .. 'day:' .. day .. ':tokens',
  }
end
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
