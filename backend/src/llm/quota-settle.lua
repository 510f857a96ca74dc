--! keys: 8
--! include: quota-window.lua
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
