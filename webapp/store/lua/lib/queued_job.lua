-- A queued job written as RQ's `Queue.enqueue_call` writes it (webapp/store/jobrecord.py sends
-- the values, the field names are here: 15 arguments where names and values took 55): the
-- queue registered, the job hash, its expiry when it has a TTL, the id pushed on the queue, and
-- a wake token so an idle worker of the queue starts at once.
--
-- From A[f]: queue name, job id, stamp (created and enqueued), data (RQ's compressed call),
-- description, timeout, result_ttl, failure_ttl, ttl, retries left, retry intervals, enqueue at
-- front on retry, meta. '' leaves the last eight unset, as RQ leaves them.
local function write_queued_job(A, f)
  local queue, job_id, stamp = A[f], A[f + 1], A[f + 2]
  local queue_key = '{{QUEUE_PREFIX}}' .. queue
  local job_key = '{{JOB_PREFIX}}' .. job_id
  local fields = {
    'created_at', stamp, 'data', A[f + 3],
    -- fields RQ writes empty on a job that has not run yet
    'success_callback_name', '', 'failure_callback_name', '', 'stopped_callback_name', '',
    'started_at', '', 'ended_at', '', 'last_heartbeat', '', 'worker_name', '', 'group_id', '',
  }
  local n = #fields
  local function add(name, value)
    fields[n + 1] = name
    fields[n + 2] = value
    n = n + 2
  end
  if A[f + 9] ~= '' then
    add('retries_left', A[f + 9])
    add('retry_intervals', A[f + 10])
    if A[f + 11] ~= '' then add('enqueue_at_front_on_retry', A[f + 11]) end
  end
  add('origin', queue)
  add('description', A[f + 4])
  add('enqueued_at', stamp)
  add('timeout', A[f + 5])
  if A[f + 6] ~= '' then add('result_ttl', A[f + 6]) end
  if A[f + 7] ~= '' then add('failure_ttl', A[f + 7]) end
  add('status', 'queued')
  if A[f + 12] ~= '' then add('meta', A[f + 12]) end
  local ttl = A[f + 8]
  if ttl ~= '' then add('ttl', ttl) end
  redis.call('SADD', '{{QUEUES}}', queue_key)
  redis.call('HSET', job_key, unpack(fields, 1, n))
  if ttl ~= '' then
    -- as RQ's Job.cleanup(ttl): the job and its dependency sets expire together
    redis.call('EXPIRE', job_key, ttl)
    redis.call('EXPIRE', job_key .. '{{DEPENDENTS_SUFFIX}}', ttl)
    redis.call('EXPIRE', '{{DEPENDENCIES_PREFIX}}' .. job_id .. ':dependencies', ttl)
  end
  redis.call('RPUSH', queue_key, job_id)
  redis.call('RPUSH', '{{WAKE_PREFIX}}' .. queue, '1')
end
