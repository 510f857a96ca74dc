--! keys: 4+
local settled_key, held, leases, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, actual = ARGV[1], tonumber(ARGV[2])
-- A set of the user's own (their index of cached answers) gets its member here, in the same round trip.
if #KEYS > 4 then
  redis.call('SADD', KEYS[5], ARGV[4])
  redis.call('EXPIRE', KEYS[5], ARGV[5])
end
redis.call('ZREM', inflight, id)
if redis.call('HDEL', held, id) == 0 then return 0 end
redis.call('ZREM', leases, id)
if actual > 0 then
  redis.call('INCRBY', settled_key, actual)
  redis.call('PEXPIRE', settled_key, tonumber(ARGV[3]))
end
return 1
