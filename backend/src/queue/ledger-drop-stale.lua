--! keys: 2
--! include: ledger-common.lua
if redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
local owner = redis.call('HGET', KEYS[2], 'owner')
if owner then redis.call('ZREM', owner_key(ARGV[3], owner, 'line'), ARGV[1]) end
return redis.call('ZREM', KEYS[1], ARGV[1])
