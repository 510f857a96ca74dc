--! keys: 1+
-- Stores the leader's result (when KEYS[2] and a value are given), deletes the lock only if this
-- leader still owns it, then tells the followers: one command after the work.
-- KEYS: lock[, stored result]   ARGV: token, channel, message[, value, ttl seconds]
if #KEYS > 1 and ARGV[4] then redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
