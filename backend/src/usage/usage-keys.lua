-- Included by the budget scripts: a user's key names from their base ("<prefix>usage:{<user key>}:",
-- the scripts' first key) and the UTC day, as usage-keys.ts names them. They share the base's hash tag.
local function usage_keys(base, day)
  local today = base .. 'day:' .. day .. ':'
  return today .. 'settled', today .. 'held', today .. 'leases', base .. 'inflight'
end
