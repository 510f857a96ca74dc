--! keys: 3
--! include: ledger-common.lua
redis.call('ZREM', KEYS[1], ARGV[1])
local now = now_ms()
if ARGV[6] ~= '' then record_throughput(KEYS[3], KEYS[1], now, tonumber(ARGV[6])) end
local record = redis.call('HMGET', KEYS[2], 'state', 'owner')
local state = record[1]
if not state then return -1 end
if record[2] then redis.call('ZREM', owner_key(ARGV[7], record[2], 'line'), ARGV[1]) end
if state == 'completed' or state == 'failed' then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[2], ARGV[3], ARGV[4], 'finishedAt', now)
redis.call('EXPIRE', KEYS[2], ARGV[5])
if record[2] then
  local expires = now + (tonumber(ARGV[5]) + tonumber(ARGV[8])) * 1000
  track(owner_key(ARGV[7], record[2], 'jobs'), ARGV[1], expires, now)
end
return 1
