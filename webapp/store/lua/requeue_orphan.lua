-- Requeue a job only if it is still queued, in no queue list and has no execution: the check
-- and the push are one step, so a worker that just claimed it is never doubled
-- (webapp/worker/recovery.py). KEYS: 1 the job hash, 2 its queue, 3 its executions. ARGV: 1 job id.
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
if redis.call('LPOS', KEYS[2], ARGV[1]) then return 0 end
if redis.call('ZCARD', KEYS[3]) > 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
return 1
