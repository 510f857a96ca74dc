--! keys: 6
-- An empty ARGV means no such key: KEYS[2] or KEYS[3] is then only a stand-in in the queue's cluster slot.
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('DEL', KEYS[2])
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[6], KEYS[3])
end
return 1
