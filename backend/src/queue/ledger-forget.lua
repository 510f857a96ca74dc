--! keys: 4
local ids = redis.call('ZRANGE', KEYS[3], 0, -1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', ARGV[1] .. id)
end
for _, key in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do redis.call('DEL', key) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return ids
