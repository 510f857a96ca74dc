--! keys: 8
--! include: ledger-common.lua
-- Without an Idempotency-Key, ARGV[6] is empty and KEYS[4] only a stand-in in the queue's cluster slot.
if ARGV[6] ~= '' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {'existing', existing} end
end
local stats = redis.call('HMGET', KEYS[5], 'iS', 'iW', 'dS', 'dW')
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return {'full', stats} end
local now = now_ms()
local expires = now + tonumber(ARGV[4]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
-- 1 + the owner's jobs in line, but never ahead of one of their own still waiting:
-- once some of theirs have started, the count alone would put a new message before older ones.
local mine = redis.call('ZRANGE', KEYS[6], 0, -1)
local highest = 0
for _, id in ipairs(mine) do
  local score = redis.call('ZSCORE', KEYS[1], id)
  local band = score and math.floor(tonumber(score) / PLACE_UNIT) or 0
  if band <= MAX_PRIORITY and band > highest then highest = band end
end
local priority = math.min(math.max(1 + #mine, highest), MAX_PRIORITY)
redis.call('ZADD', KEYS[1], priority * PLACE_UNIT + arrival_place(KEYS[2], now), ARGV[1])
redis.call('HSET', KEYS[3], 'owner', ARGV[2], 'state', 'waiting', 'enqueuedAt', now, 'priority', priority)
redis.call('EXPIRE', KEYS[3], ARGV[4])
track(KEYS[6], ARGV[1], expires, now)
track(KEYS[7], ARGV[1], expires + tonumber(ARGV[7]) * 1000, now)
if ARGV[6] ~= '' then
  redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[5])
  track(KEYS[8], KEYS[4], now + tonumber(ARGV[5]) * 1000, now)
end
return {'admitted', stats, redis.call('ZRANK', KEYS[1], ARGV[1]), priority}
