import { redisScript } from '../redis/redis-script.js';

/**
 * The Lua side of the job ledger (job-ledger.ts). Each script is one atomic
 * step of a job's life; every timestamp comes from Redis TIME, so instances
 * with skewed clocks still measure the same waits and intervals.
 *
 * The line mirrors BullMQ's order. BullMQ serves its wait list first (where a
 * job recovered from a dead worker goes), then its prioritized set, scored
 * priority × 2^32 + a counter of entries: a new job, and a delayed job once it
 * falls due, enter behind the jobs of their priority already there; a job
 * handed back at shutdown goes to the front of its priority. A delayed job is
 * in no line until due: every runnable job goes before it meanwhile.
 *
 * Our score is band × PLACE_UNIT + a place in ms. Bands: 0 for jobs recovered
 * from a dead worker, then the priorities (place: arrival time; 0 for a job
 * handed back), then DELAYED_BAND for delayed jobs (place: due time), behind
 * every runnable job. BullMQ promotes the delayed jobs now due when a worker
 * fetches, just before our start script runs: that script promotes them too,
 * each with an arrival place then (promote_due). Places in ms stay under 2^42
 * until 2109, so with priorities up to MAX_PRIORITY every score is an exact
 * integer in a double.
 *
 * An owner's keys (queue-keys.ts) are found from the record's owner, so a
 * worker that knows only a job id keeps the owner's count of jobs in line.
 */

/** 2^42: priority bands above, places in ms below. */
export const PLACE_UNIT = 2 ** 42;
/** The largest priority: the band above it is the delayed jobs', and scores stay below 2^53. */
export const MAX_PRIORITY = 2 ** (53 - 42) - 2;
const DELAYED_BAND = MAX_PRIORITY + 1;

const COMMON = `
local PLACE_UNIT = ${PLACE_UNIT}
local DELAYED_BAND = ${DELAYED_BAND}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Arrivals get strictly increasing places (ms), kept in the arrival key.
local function arrival_place(seq, now)
  local place = math.max(now, (tonumber(redis.call('GET', seq)) or 0) + 1)
  redis.call('SET', seq, place)
  return place
end

local function owner_key(prefix, owner, what)
  return prefix .. owner .. ':' .. what
end

-- Holds member in an owner's sorted set until expiresAt (ms); members already
-- past theirs leave, and the key lives as long as its last member.
local function track(key, member, expiresAt, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, expiresAt, member)
  if redis.call('PTTL', key) < expiresAt - now then redis.call('PEXPIRE', key, expiresAt - now) end
end

-- Delayed jobs now due enter their priority behind the jobs already there, in
-- due order, as BullMQ promotes them. A record gone leaves its entry for the
-- worker to drop.
local function promote_due(line, seq, job_prefix, now)
  local base = DELAYED_BAND * PLACE_UNIT
  local due = redis.call('ZRANGEBYSCORE', line, base, base + now, 'LIMIT', 0, 1000)
  for _, id in ipairs(due) do
    local record = redis.call('HMGET', job_prefix .. id, 'state', 'priority')
    if record[1] then
      redis.call('ZADD', line, (tonumber(record[2]) or 1) * PLACE_UNIT + arrival_place(seq, now), id)
    end
  end
end

-- When a record expires, in ms (it always has a TTL; a missing one reads as now).
local function expires_at(job, now)
  return now + math.max(redis.call('PTTL', job), 0)
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
 * Admission: the idempotency slot, the backlog cap, the priority (1 + the
 * owner's jobs in line), the place in line, the job's record and the owner's
 * index in one atomic step, so concurrent POSTs can neither pass the cap, nor
 * queue one Idempotency-Key twice, nor get the same priority.
 * KEYS: line, seq, job, idempotency key (or "" when none), stats, owner line, owner jobs, owner idem
 * ARGV: jobId, owner, maxWaiting, pendingTtlSeconds, idempotencyTtlSeconds, idempotency value,
 *       index grace seconds (how long BullMQ may keep a job past its record)
 * → {'existing', value} | {'full', stats} | {'admitted', stats, rank, priority}
 */
export const admitScript = redisScript(`${COMMON}
if KEYS[4] ~= '' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {'existing', existing} end
end
local stats = redis.call('HMGET', KEYS[5], 'iS', 'iW', 'dS', 'dW')
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return {'full', stats} end
local now = now_ms()
local expires = now + tonumber(ARGV[4]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
-- 1 + the owner's jobs in line, but never ahead of one of their own still waiting:
-- once some of theirs have started, the count alone would put a new message before older ones.
local mine = redis.call('ZRANGE', KEYS[6], 0, -1)
local highest = 0
for _, id in ipairs(mine) do
  local score = redis.call('ZSCORE', KEYS[1], id)
  local band = score and math.floor(tonumber(score) / PLACE_UNIT) or 0
  if band <= ${MAX_PRIORITY} and band > highest then highest = band end
end
local priority = math.min(math.max(1 + #mine, highest), ${MAX_PRIORITY})
redis.call('ZADD', KEYS[1], priority * PLACE_UNIT + arrival_place(KEYS[2], now), ARGV[1])
redis.call('HSET', KEYS[3], 'owner', ARGV[2], 'state', 'waiting', 'enqueuedAt', now, 'priority', priority)
redis.call('EXPIRE', KEYS[3], ARGV[4])
track(KEYS[6], ARGV[1], expires, now)
track(KEYS[7], ARGV[1], expires + tonumber(ARGV[7]) * 1000, now)
if KEYS[4] ~= '' then
  redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[5])
  track(KEYS[8], KEYS[4], now + tonumber(ARGV[5]) * 1000, now)
end
return {'admitted', stats, redis.call('ZRANK', KEYS[1], ARGV[1]), priority}
`);

/**
 * Undoes an admission whose BullMQ add failed, and/or frees an idempotency slot
 * if it still holds the given value.
 * KEYS: line, job or "", idempotency key or "", owner line, owner jobs, owner idem. ARGV: jobId or "", value
 */
export const withdrawScript = redisScript(`
if KEYS[2] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('DEL', KEYS[2])
end
if KEYS[3] ~= '' and redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[6], KEYS[3])
end
return 1
`);

/**
 * A worker starts an attempt, just after BullMQ's fetch, which promoted the
 * delayed jobs now due. KEYS: line, job, seq. ARGV: jobId, owner key prefix, job key prefix
 * → -1 no record (expired or deleted: nobody can read an answer), -3 already
 * finished (a re-delivery), -2 a restart, else the ms the job waited before its first start.
 */
export const startScript = redisScript(`${COMMON}
redis.call('ZREM', KEYS[1], ARGV[1])
local now = now_ms()
promote_due(KEYS[1], KEYS[3], ARGV[3], now)
local record = redis.call('HMGET', KEYS[2], 'state', 'owner')
local state = record[1]
if not state then return -1 end
if record[2] then redis.call('ZREM', owner_key(ARGV[2], record[2], 'line'), ARGV[1]) end
if state == 'completed' or state == 'failed' then return -3 end
redis.call('HSET', KEYS[2], 'state', 'active', 'startedAt', now)
if redis.call('HSETNX', KEYS[2], 'firstStartedAt', now) == 1 then
  return math.max(now - (tonumber(redis.call('HGET', KEYS[2], 'enqueuedAt')) or now), 0)
end
return -2
`);

/**
 * The job goes back in line where BullMQ puts it (see the top of this file):
 * delayed (quota, retry backoff) behind the runnable jobs until due; handed
 * back at shutdown at the front of its priority; stalled (recovered from a dead
 * worker) ahead of every prioritized job, the latest first, as BullMQ's wait
 * list serves them.
 * KEYS: line, seq, job, stats. ARGV: jobId, how (delayed|handed_back|stalled), delayMs,
 * attempt duration ms or "", owner key prefix
 * → 1 parked, 0 already finished, -1 no record
 */
export const parkScript = redisScript(`${COMMON}
local now = now_ms()
if ARGV[4] ~= '' then record_throughput(KEYS[4], KEYS[1], now, tonumber(ARGV[4])) end
local record = redis.call('HMGET', KEYS[3], 'state', 'owner', 'priority')
local state = record[1]
if not state then return -1 end
if state == 'completed' or state == 'failed' then return 0 end
local priority = tonumber(record[3]) or 1
local score
if ARGV[2] == 'delayed' then
  score = DELAYED_BAND * PLACE_UNIT + now + tonumber(ARGV[3])
elseif ARGV[2] == 'handed_back' then
  score = priority * PLACE_UNIT
else
  local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  score = math.min(tonumber(head[2]) or PLACE_UNIT, PLACE_UNIT) - 1
end
redis.call('ZADD', KEYS[1], score, ARGV[1])
if record[2] then
  track(owner_key(ARGV[5], record[2], 'line'), ARGV[1], expires_at(KEYS[3], now), now)
end
redis.call('HSET', KEYS[3], 'state', ARGV[2] == 'delayed' and 'delayed' or 'waiting', 'readyAt', now + tonumber(ARGV[3]))
return 1
`);

/**
 * The job's final outcome, readable for ttl seconds. A finished record is never overwritten.
 * KEYS: line, job, stats. ARGV: jobId, state, field (result|error), JSON, ttlSeconds,
 * attempt duration ms or "", owner key prefix, index grace seconds
 * → 1 recorded, 0 already finished, -1 no record
 */
export const finishScript = redisScript(`${COMMON}
redis.call('ZREM', KEYS[1], ARGV[1])
local now = now_ms()
if ARGV[6] ~= '' then record_throughput(KEYS[3], KEYS[1], now, tonumber(ARGV[6])) end
local record = redis.call('HMGET', KEYS[2], 'state', 'owner')
local state = record[1]
if not state then return -1 end
if record[2] then redis.call('ZREM', owner_key(ARGV[7], record[2], 'line'), ARGV[1]) end
if state == 'completed' or state == 'failed' then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[2], ARGV[3], ARGV[4], 'finishedAt', now)
redis.call('EXPIRE', KEYS[2], ARGV[5])
if record[2] then
  local expires = now + (tonumber(ARGV[5]) + tonumber(ARGV[8])) * 1000
  track(owner_key(ARGV[7], record[2], 'jobs'), ARGV[1], expires, now)
end
return 1
`);

/**
 * Drops a line entry the reconciler found stale, unless it was re-queued since.
 * KEYS: line, job. ARGV: jobId, score, owner key prefix
 */
export const dropStaleScript = redisScript(`${COMMON}
if redis.call('ZSCORE', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
local owner = redis.call('HGET', KEYS[2], 'owner')
if owner then redis.call('ZREM', owner_key(ARGV[3], owner, 'line'), ARGV[1]) end
return redis.call('ZREM', KEYS[1], ARGV[1])
`);

/**
 * Deletes what the ledger holds of one owner: each job's record and line
 * entry, their Idempotency-Key slots, and the owner's own keys.
 * KEYS: line, owner line, owner jobs, owner idem. ARGV: job key prefix
 * → the job ids, for the caller to remove from BullMQ
 */
export const forgetScript = redisScript(`
local ids = redis.call('ZRANGE', KEYS[3], 0, -1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', ARGV[1] .. id)
end
for _, key in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do redis.call('DEL', key) end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return ids
`);
