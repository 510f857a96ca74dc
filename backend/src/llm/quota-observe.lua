--! keys: 5
local tpm, rpd = tonumber(ARGV[1]), tonumber(ARGV[2])
local limitTokens, remainingTokens, resetTokens = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local limitRequests, remainingRequests, ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
if limitTokens > 0 and (tpm <= 0 or limitTokens < tpm) then
  redis.call('SET', KEYS[3], limitTokens, 'PX', ttl)
  tpm = limitTokens
end
if limitRequests > 0 and (rpd <= 0 or limitRequests < rpd) then
  redis.call('SET', KEYS[4], limitRequests, 'PX', ttl)
  rpd = limitRequests
end
if tpm > 0 and remainingTokens >= 0 then
  -- What the upstream counts beyond our own window is someone else's usage.
  local others = tpm - remainingTokens - tonumber(redis.call('GET', KEYS[1]) or '0')
  if others > 0 then
    redis.call('SET', KEYS[2], others, 'PX', math.max(1000, resetTokens))
  else
    redis.call('DEL', KEYS[2])
  end
end
if rpd > 0 and remainingRequests >= 0 then
  local usedToday = rpd - remainingRequests
  if usedToday > tonumber(redis.call('GET', KEYS[5]) or '0') then
    redis.call('SET', KEYS[5], usedToday, 'EX', 172800)
  end
end
return 1
