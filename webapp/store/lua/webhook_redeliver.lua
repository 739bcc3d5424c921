-- uses: webhooks
-- Deliver an ended delivery again (webapp/store/webhooks.py): a new series of attempts from now
-- (a new retry window, the attempt count from 0: the first backoff and Jobsvc-Attempt: 1 again),
-- the same id, body and attempt log. Only a delivered or failed delivery of that job qualifies.
-- ARGV: 1 delivery id, 2 its job's id, 3 now (ms).
-- Returns 'ok', 'missing', or the delivery's state when it has not ended.
local key = '{{WEBHOOK_PREFIX}}' .. ARGV[1]
local fields = redis.call('HMGET', key, 'job_id', 'state', 'host')
if not fields[1] or fields[1] ~= ARGV[2] then return 'missing' end
if fields[2] ~= 'delivered' and fields[2] ~= 'failed' then return fields[2] end
redis.call('PERSIST', key)
redis.call('PERSIST', key .. '{{WEBHOOK_ATTEMPTS_SUFFIX}}')
redis.call('HSET', key, 'state', 'pending', 'since', ARGV[3], 'next', ARGV[3], 'attempts', 0)
redis.call('HDEL', key, 'ended')
webhook_schedule(fields[3], ARGV[1], ARGV[3])
if redis.call('LLEN', '{{WEBHOOK_WAKE}}') < 16 then redis.call('RPUSH', '{{WEBHOOK_WAKE}}', '1') end
return 'ok'
