-- uses: webhooks
-- Claim due webhook deliveries for one delivery thread (webapp/store/webhooks.py): at most
-- ARGV[3] in all and, per host, at most ARGV[5] minus what this thread already sends there
-- (ARGV[6...]: host, count pairs), so a slow host's backlog is never read while it is busy.
-- A claimed delivery is rescheduled `lease` ms ahead, so it comes due again if its claimant
-- dies before reporting, and gets a fresh claim token: only the report carrying that token is
-- taken (lua/webhook_done.lua), so a late claimant cannot overwrite a newer one.
-- ARGV: 1 now (ms), 2 lease (ms), 3 how many at most, 4 the claimant's name, 5 per-host cap,
--       then pairs (host, deliveries in flight there).
-- Returns {{id, token, the delivery hash as a flat list}, ...}.
local now, lease, wanted, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local busy = {}
for i = 6, #ARGV, 2 do busy[ARGV[i]] = tonumber(ARGV[i + 1]) end
local claimed = {}
local hosts = redis.call('ZRANGEBYSCORE', '{{WEBHOOK_DUE}}', '-inf', now, 'LIMIT', 0, 200)
for _, host in ipairs(hosts) do
  if #claimed >= wanted then break end
  local room = math.min(cap - (busy[host] or 0), wanted - #claimed)
  if room > 0 then
    local ids = redis.call('ZRANGEBYSCORE', '{{WEBHOOK_DUE_HOST_PREFIX}}' .. host, '-inf', now, 'LIMIT', 0, room)
    for _, id in ipairs(ids) do
      local key = '{{WEBHOOK_PREFIX}}' .. id
      if redis.call('EXISTS', key) == 0 then
        webhook_unschedule(host, id)  -- deleted by hand: nothing to deliver
      else
        local token = ARGV[4] .. ':' .. redis.call('HINCRBY', key, 'claims', 1)
        redis.call('HSET', key, 'state', 'delivering', 'token', token, 'next', now + lease)
        webhook_schedule(host, id, now + lease)
        table.insert(claimed, {id, token, redis.call('HGETALL', key)})
      end
    end
  end
end
return claimed
