--! keys: 3
--! include: ledger-common.lua
redis.call('ZREM', KEYS[1], ARGV[1])
local now = now_ms()
promote_due(KEYS[1], KEYS[3], ARGV[3], now)
local record = redis.call('HMGET', KEYS[2], 'state', 'owner')
local state = record[1]
if not state then return -1 end
if record[2] then redis.call('ZREM', owner_key(ARGV[2], record[2], 'line'), ARGV[1]) end
if state == 'completed' or state == 'failed' then return -3 end
redis.call('HSET', KEYS[2], 'state', 'active', 'startedAt', now)
if redis.call('HSETNX', KEYS[2], 'firstStartedAt', now) == 1 then
  return math.max(now - (tonumber(redis.call('HGET', KEYS[2], 'enqueuedAt')) or now), 0)
end
return -2
