-- uses: webhooks
-- A delivery thread's report on one claimed delivery (webapp/store/webhooks.py): record the
-- attempt, then schedule the next one or end the delivery (delivered, or failed for good).
-- Ignored unless the claim token still matches.
-- ARGV: 1 delivery id, 2 claim token, 3 outcome ('delivered', 'retry', 'failed'),
--       4 the attempt as JSON, 5 next attempt (ms; retry),
--       6 log ttl (s), 7 the body sent ('' = none; kept from the first attempt on), 8 now (ms).
local key = '{{WEBHOOK_PREFIX}}' .. ARGV[1]
if redis.call('HGET', key, 'token') ~= ARGV[2] then return 0 end
local outcome = ARGV[3]
local host = redis.call('HGET', key, 'host')
redis.call('HDEL', key, 'token')
if ARGV[7] ~= '' then redis.call('HSETNX', key, 'body', ARGV[7]) end
local attempts = key .. '{{WEBHOOK_ATTEMPTS_SUFFIX}}'
redis.call('RPUSH', attempts, ARGV[4])
redis.call('LTRIM', attempts, -50, -1)
redis.call('HINCRBY', key, 'attempts', 1)
if outcome == 'retry' then
  redis.call('HSET', key, 'state', 'retrying', 'next', ARGV[5])
  webhook_schedule(host, ARGV[1], ARGV[5])
  return 1
end
redis.call('HSET', key, 'state', outcome, 'ended', ARGV[8])
redis.call('HDEL', key, 'next')
webhook_unschedule(host, ARGV[1])
local ttl = tonumber(ARGV[6])
redis.call('EXPIRE', key, ttl)
redis.call('EXPIRE', attempts, ttl)
local job_list = '{{WEBHOOK_JOB_PREFIX}}' .. redis.call('HGET', key, 'job_id')
if redis.call('TTL', job_list) < ttl then redis.call('EXPIRE', job_list, ttl) end
return 1
