-- Counters kept beside every event write (webapp/web/ops.py serves them as Prometheus metrics):
-- events by name, the live-job index the reconciler scans (queued or running jobs, scored by
-- when they were queued), each run's duration in fixed histogram buckets, and jobs finished
-- and failed per minute for the overview charts (webapp/store/stats.py): one HINCRBY, and an
-- EXPIRE only when a minute's field is new.
local function jobsvc_metrics(event, job_id, at)
  local ends = {{{TERMINAL_EVENTS}}}
  if not event then return end
  redis.call('HINCRBY', '{{METRICS_EVENTS}}', event, 1)
  if event == 'finished' or event == 'failed' then
    local minute = math.floor(at / 60)
    local hour_key = '{{STATS_PREFIX}}' .. math.floor(minute / 60)
    if redis.call('HINCRBY', hour_key, minute .. ':' .. event, 1) == 1 then
      redis.call('EXPIRE', hour_key, {{STATS_RETENTION}})
    end
  end
  if event == 'queued' or event == 'retrying' then
    redis.call('ZADD', '{{LIVE}}', at, job_id)
  elseif ends[event] then
    redis.call('ZREM', '{{LIVE}}', job_id)
  end
  if event == 'started' then
    redis.call('HSET', '{{RUN_STARTED}}', job_id, tostring(at))
  elseif ends[event] or event == 'retrying' or event == 'abandoned' then
    local began = redis.call('HGET', '{{RUN_STARTED}}', job_id)
    if began then
      redis.call('HDEL', '{{RUN_STARTED}}', job_id)
      if event ~= 'abandoned' then
        local took = at - tonumber(began)
        local field = '+Inf'
        for _, bound in ipairs({{{DURATION_BUCKETS}}}) do
          if took <= tonumber(bound) then field = bound break end
        end
        redis.call('HINCRBY', '{{METRICS_DURATION}}', field, 1)
        redis.call('HINCRBYFLOAT', '{{METRICS_DURATION}}', 'sum', took)
      end
    end
  end
end
