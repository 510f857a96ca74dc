--! keys: 3
--! include: ledger-common.lua
local now = now_ms()
if ARGV[4] ~= '' then record_throughput(KEYS[3], KEYS[1], now, tonumber(ARGV[4])) end
local record = redis.call('HMGET', KEYS[2], 'state', 'owner', 'priority')
local state = record[1]
if not state then return -1 end
if state == 'completed' or state == 'failed' then return 0 end
local priority = tonumber(record[3]) or 1
local score
if ARGV[2] == 'delayed' then
  score = DELAYED_BAND * PLACE_UNIT + now + tonumber(ARGV[3])
elseif ARGV[2] == 'handed_back' then
  score = priority * PLACE_UNIT
else
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  score = math.min(tonumber(head[2]) or PLACE_UNIT, PLACE_UNIT) - 1
end
redis.call('ZADD', KEYS[1], score, ARGV[1])
if record[2] then
  track(owner_key(ARGV[5], record[2], 'line'), ARGV[1], expires_at(KEYS[2], now), now)
end
redis.call('HSET', KEYS[2], 'state', ARGV[2] == 'delayed' and 'delayed' or 'waiting', 'readyAt', now + tonumber(ARGV[3]))
return 1
