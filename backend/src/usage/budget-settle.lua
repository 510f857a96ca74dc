--! keys: 1+
--! include: usage-keys.lua
local settled_key, held, leases, inflight = usage_keys(KEYS[1], ARGV[4])
local id, actual = ARGV[1], tonumber(ARGV[2])
-- A set of the user's own (their index of cached answers) gets its member here, in the same round trip.
if #KEYS > 1 then
  redis.call('SADD', KEYS[2], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
redis.call('ZREM', inflight, id)
if redis.call('HDEL', held, id) == 0 then return 0 end
redis.call('ZREM', leases, id)
if actual > 0 then
  redis.call('INCRBY', settled_key, actual)
  redis.call('PEXPIRE', settled_key, tonumber(ARGV[3]))
end
return 1
