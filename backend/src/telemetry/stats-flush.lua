--! keys: 1+
-- One flush of an instance's stats batch (cluster-stats.ts). Every key is under the {stats} tag.
-- KEYS: active users, then one window hash per second of the batch
-- ARGV: bucket ttl s, active ttl s, prune before (ms, or '' to keep), callers n, n × (score, member),
--       then per window hash: fields m, m × (field, by)
local at = 5
local callers = tonumber(ARGV[4])
if callers > 0 then
  local members = {}
  for i = 1, callers * 2 do members[i] = ARGV[at + i - 1] end
  redis.call('ZADD', KEYS[1], unpack(members))
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  at = at + callers * 2
end
if ARGV[3] ~= '' then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3]) end
for k = 2, #KEYS do
  local fields = tonumber(ARGV[at])
  for i = 1, fields do
    redis.call('HINCRBY', KEYS[k], ARGV[at + i * 2 - 1], ARGV[at + i * 2])
  end
  redis.call('EXPIRE', KEYS[k], ARGV[1])
  at = at + 1 + fields * 2
end
return 1
