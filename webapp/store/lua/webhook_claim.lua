-- Claim up to ARGV[3] due webhook deliveries for one delivery thread (webapp/store/webhooks.py).
-- A claimed delivery is pushed `lease` ms into the future in the due set, so it comes due again
-- if its claimant dies before reporting, and gets a fresh claim token: only the report carrying
-- that token is taken (lua/webhook_done.lua), so a late claimant cannot overwrite a newer one.
-- ARGV: 1 now (ms), 2 lease (ms), 3 how many at most, 4 the claimant's name.
-- Returns {{id, token, the delivery hash as a flat list}, ...}.
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', '{{WEBHOOK_DUE}}', '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, id in ipairs(ids) do
  local key = '{{WEBHOOK_PREFIX}}' .. id
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', '{{WEBHOOK_DUE}}', id)  -- deleted by hand: nothing to deliver
  else
    local token = ARGV[4] .. ':' .. redis.call('HINCRBY', key, 'claims', 1)
    redis.call('HSET', key, 'state', 'delivering', 'token', token, 'next', now + lease)
    redis.call('ZADD', '{{WEBHOOK_DUE}}', now + lease, id)
    table.insert(claimed, {id, token, redis.call('HGETALL', key)})
  end
end
return claimed
