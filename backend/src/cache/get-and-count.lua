--! keys: 2+
local value = false
for i = 2, #KEYS do
  value = redis.call('GET', KEYS[i])
  if value then break end
end
redis.call('HINCRBY', KEYS[1], value and ARGV[1] or ARGV[2], 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return value
