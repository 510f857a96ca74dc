-- Included by the ledger scripts. PLACE_UNIT, DELAYED_BAND and MAX_PRIORITY are defined in
-- ledger-scripts.ts, and now_ms() in redis/clock.lua.
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
