-- The shared clock, put before every script (redis-script.ts): milliseconds from
-- Redis TIME, so every instance reads one clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
