--! keys: 3
--! include: open-tokens.lua
local settled_key, held, leases = KEYS[1], KEYS[2], KEYS[3]
local id, estimate, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, lease, ttl = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local settled = tonumber(redis.call('GET', settled_key) or '0')
local open = open_tokens(held, leases, now)
if settled + open + estimate > budget then return {0, settled, open} end
redis.call('HSET', held, id, estimate)
redis.call('ZADD', leases, now + lease, id)
redis.call('PEXPIRE', held, ttl)
redis.call('PEXPIRE', leases, ttl)
return {1, settled, open}
