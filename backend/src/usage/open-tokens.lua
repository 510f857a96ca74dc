-- Included by the budget reservation: tokens held by live reservations, leases past their time pruned.
local function open_tokens(held, leases, now)
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  local ids = redis.call('ZRANGE', leases, 0, -1)
  local open = 0
  if #ids > 0 then
    for _, value in ipairs(redis.call('HMGET', held, unpack(ids))) do
      if value then open = open + tonumber(value) end
    end
  end
  return open
end
