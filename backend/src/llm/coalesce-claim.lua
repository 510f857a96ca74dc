--! keys: 2
-- Reads the stored result and, when there is none, takes the leader's lock, in one command.
-- KEYS: lock, stored result (one {tag}: the same slot)   ARGV: token, lock ttl ms
-- → {'found', value} | {'lead'} | {'wait'}
local value = redis.call('GET', KEYS[2])
if value then return {'found', value} end
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return {'lead'} end
return {'wait'}
