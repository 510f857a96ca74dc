--! keys: 1
--! include: open-tokens.lua
--! include: usage-keys.lua
local settled_key, held, leases, inflight = usage_keys(KEYS[1], ARGV[8])
local id, estimate, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, lease, ttl, slots = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if slots > 0 then
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  if redis.call('ZCARD', inflight) >= slots then return {-1, 0, 0} end
end
local settled, open = 0, 0
if budget > 0 then
  settled = tonumber(redis.call('GET', settled_key) or '0')
  open = open_tokens(held, leases, now)
  if settled + open + estimate > budget then return {0, settled, open} end
  redis.call('HSET', held, id, estimate)
  redis.call('ZADD', leases, now + lease, id)
  redis.call('PEXPIRE', held, ttl)
  redis.call('PEXPIRE', leases, ttl)
end
if slots > 0 then
  redis.call('ZADD', inflight, now + lease, id)
  redis.call('PEXPIRE', inflight, lease)
end
return {1, settled, open}
