-- uses: limits
-- A worker's periodic pass over the active limit keys (lib/limits.lua), for what no job's end
-- triggers: keys whose rate window admits again while every worker was busy, and keys whose
-- running jobs lost their lease. At most ARGV[2] keys, least recently active first.
-- ARGV: 1 now (Unix seconds), 2 how many keys. Returns how many jobs were promoted.
local now, promoted = tonumber(ARGV[1]), 0
for _, key in ipairs(redis.call('ZRANGE', '{{LIMIT_KEYS}}', 0, tonumber(ARGV[2]) - 1)) do
  if redis.call('EXISTS', '{{LIMIT_PARKED_PREFIX}}' .. key) == 1 then
    local free, due = limit_free(key, now, 16)
    if free > 0 then promoted = promoted + limit_promote(key, free) end
    if due and redis.call('EXISTS', '{{LIMIT_PARKED_PREFIX}}' .. key) == 1 then
      redis.call('ZADD', '{{LIMIT_DUE}}', due, key)
    end
  end
  limit_forget_if_idle(key)
  redis.call('ZADD', '{{LIMIT_KEYS}}', 'XX', now, key)  -- to the back: the next pass looks at others first
end
return promoted
