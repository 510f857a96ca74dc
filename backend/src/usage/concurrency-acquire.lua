--! keys: 1
local inflight, id, max = KEYS[1], ARGV[1], tonumber(ARGV[2])
local now, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
if redis.call('ZCARD', inflight) >= max then return 0 end
redis.call('ZADD', inflight, now + lease, id)
redis.call('PEXPIRE', inflight, lease)
return 1
