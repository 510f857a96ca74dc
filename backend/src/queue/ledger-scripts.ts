import { redisScript } from '../redis/redis-script.js';

/**
 * The Lua side of the job ledger (job-ledger.ts). Each script is one atomic
 * step of a job's life; every timestamp comes from Redis TIME, so instances
 * with skewed clocks still measure the same waits and intervals.
 */

const COMMON = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A place in line is a time in microseconds: arrival for a waiting job, due
-- time for a delayed one (BullMQ queues it behind whatever arrived before it
-- was due). Arrivals get strictly increasing places, kept in the seq key.
local function arrival_place(seq)
  local t = redis.call('TIME')
  local place = math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), (tonumber(redis.call('GET', seq)) or 0) + 1)
  redis.call('SET', seq, place)
  return place
end

-- A bias-corrected exponentially weighted mean: sum and weight decay alike, so
-- the first samples count fully instead of being pulled towards zero.
local function average(stats, field, sample)
  local alpha = 0.2
  local old = redis.call('HMGET', stats, field .. 'S', field .. 'W')
  local s = (tonumber(old[1]) or 0) * (1 - alpha) + alpha * sample
  local w = (tonumber(old[2]) or 0) * (1 - alpha) + alpha
  redis.call('HSET', stats, field .. 'S', s, field .. 'W', w)
end

-- A worker finished an attempt. The gap since the previous one is a sample of
-- the cluster's service interval only if jobs were waiting then (workers busy),
-- never idle time. Capped at 5 minutes so one outage does not linger.
local function record_throughput(stats, line, now, duration)
  local last = redis.call('HMGET', stats, 'lastAt', 'lastBacklog')
  if last[1] and (tonumber(last[2]) or 0) > 0 then
    average(stats, 'i', math.min(math.max(now - tonumber(last[1]), 0), 300000))
  end
  average(stats, 'd', duration)
  redis.call('HSET', stats, 'lastAt', now, 'lastBacklog', redis.call('ZCARD', line))
  redis.call('EXPIRE', stats, 604800)
end
`;

/**
 * Admission: the idempotency slot, the backlog cap, the place in line and the
 * job's record in one atomic step, so concurrent POSTs can neither pass the
 * cap nor queue one Idempotency-Key twice.
 * KEYS: line, seq, job, idempotency key (or "" when none), stats
 * ARGV: jobId, owner, maxWaiting, pendingTtlSeconds, idempotencyTtlSeconds, idempotency value
 * → {'existing', value} | {'full', stats} | {'admitted', stats, rank}
 */
export const admitScript = redisScript(`${COMMON}
if KEYS[4] ~= '' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {'existing', existing} end
end
local stats = redis.call('HMGET', KEYS[5], 'iS', 'iW', 'dS', 'dW')
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return {'full', stats} end
redis.call('ZADD', KEYS[1], arrival_place(KEYS[2]), ARGV[1])
redis.call('HSET', KEYS[3], 'owner', ARGV[2], 'state', 'waiting', 'enqueuedAt', now_ms())
redis.call('EXPIRE', KEYS[3], ARGV[4])
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[5]) end
return {'admitted', stats, redis.call('ZRANK', KEYS[1], ARGV[1])}
`);

/**
 * Undoes an admission whose BullMQ add failed, and/or frees an idempotency slot
 * if it still holds the given value. KEYS: line, job or "", idempotency key or "". ARGV: jobId or "", value
 */
export const withdrawScript = redisScript(`
if KEYS[2] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
end
if KEYS[3] ~= '' and redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end
return 1
`);

/**
 * A worker starts an attempt. KEYS: line, job. ARGV: jobId
 * → -1 no record (expired: nobody can read an answer), -3 already finished
 * (a re-delivery), -2 a restart, else the ms the job waited before its first start.
 */
export const startScript = redisScript(`${COMMON}
redis.call('ZREM', KEYS[1], ARGV[1])
local state = redis.call('HGET', KEYS[2], 'state')
if not state then return -1 end
if state == 'completed' or state == 'failed' then return -3 end
local now = now_ms()
redis.call('HSET', KEYS[2], 'state', 'active', 'startedAt', now)
if redis.call('HSETNX', KEYS[2], 'firstStartedAt', now) == 1 then
  return math.max(now - (tonumber(redis.call('HGET', KEYS[2], 'enqueuedAt')) or now), 0)
end
return -2
`);

/**
 * The job goes back in line where BullMQ puts it: delayed (quota, retry
 * backoff) at its due time, behind the jobs that arrive before then; waiting
 * (handed back at shutdown, recovered from a dead worker) at the front, as
 * BullMQ runs such a job next.
 * KEYS: line, seq, job, stats. ARGV: jobId, state, delayMs, attempt duration ms or ""
 */
export const parkScript = redisScript(`${COMMON}
local now = now_ms()
if ARGV[4] ~= '' then record_throughput(KEYS[4], KEYS[1], now, tonumber(ARGV[4])) end
local state = redis.call('HGET', KEYS[3], 'state')
if not state or state == 'completed' or state == 'failed' then return 0 end
local place
if ARGV[2] == 'waiting' then
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  place = head[2] and tonumber(head[2]) - 1 or arrival_place(KEYS[2])
else
  place = (now + tonumber(ARGV[3])) * 1000
end
redis.call('ZADD', KEYS[1], place, ARGV[1])
redis.call('HSET', KEYS[3], 'state', ARGV[2], 'readyAt', now + tonumber(ARGV[3]))
return 1
`);

/**
 * The job's final outcome, readable for ttl seconds. A finished record is never overwritten.
 * KEYS: line, job, stats. ARGV: jobId, state, field (result|error), JSON, ttlSeconds, attempt duration ms or ""
 */
export const finishScript = redisScript(`${COMMON}
redis.call('ZREM', KEYS[1], ARGV[1])
local now = now_ms()
if ARGV[6] ~= '' then record_throughput(KEYS[3], KEYS[1], now, tonumber(ARGV[6])) end
local state = redis.call('HGET', KEYS[2], 'state')
if not state or state == 'completed' or state == 'failed' then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[2], ARGV[3], ARGV[4], 'finishedAt', now)
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
`);

/** Drops a line entry the reconciler found stale, unless it was re-queued since. KEYS: line. ARGV: jobId, score */
export const dropStaleScript = redisScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`);
