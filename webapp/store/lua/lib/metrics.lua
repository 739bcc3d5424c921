-- Counters kept beside every event write (webapp/web/ops.py serves them as Prometheus metrics):
-- events by name, the live-job index the reconciler scans (queued or running jobs, scored by
-- when they were queued), each run's duration in fixed histogram buckets (from `began`, the
-- run's start as its end's writer knows it, Unix seconds), and jobs finished
-- and failed per minute for the overview charts (webapp/store/stats.py): one HINCRBY, and an
-- EXPIRE only when a minute's field is new.
-- `at` is Unix seconds as text (or a number); whole numbers go to Redis through '%d', which
-- costs a fraction of Lua's own number-to-text conversion ('%.14g').
local function jobsvc_metrics(event, job_id, at, began)
  if not event then return end
  local ends_job = {{IS_TERMINAL_EVENT}}
  redis.call('HINCRBY', '{{METRICS_EVENTS}}', event, '1')
  local at_number = tonumber(at)
  if event == 'finished' or event == 'failed' then
    local minute = math.floor(at_number / 60)
    local hour_key = '{{STATS_PREFIX}}' .. string.format('%d', math.floor(minute / 60))
    if redis.call('HINCRBY', hour_key, string.format('%d', minute) .. ':' .. event, '1') == 1 then
      redis.call('EXPIRE', hour_key, {{STATS_RETENTION}})
    end
  end
  if event == 'queued' or event == 'retrying' then
    redis.call('ZADD', '{{LIVE}}', at, job_id)
  elseif ends_job then
    redis.call('ZREM', '{{LIVE}}', job_id)
  end
  -- a run's duration: its end's writer says when it began (STEP's finish, the worker's end
  -- events); other ends (a job canceled while queued, a run its worker died in) are not timed
  if began and began ~= '' and (ends_job or event == 'retrying') then
    local took = at_number - tonumber(began)
    local field
    {{DURATION_BUCKET_OF_TOOK}}
    redis.call('HINCRBY', '{{METRICS_DURATION}}', field, '1')
    -- whole microseconds: HINCRBY costs a fraction of HINCRBYFLOAT's float parsing and printing
    redis.call('HINCRBY', '{{METRICS_DURATION}}', 'sum_us', string.format('%d', math.floor(took * 1000000 + 0.5)))
  end
end
