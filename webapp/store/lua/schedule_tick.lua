-- uses: submission, schedule_events
-- One transition of a schedule, claimed and written in one step (webapp/store/schedules.py):
-- a tick's run (its job written exactly as a submission's, lib/submission.lua), a catch-up
-- run, a skip, or a manual run. The guard comes first: the schedule must still be at the
-- revision the caller planned from and, for a tick, its stored next tick must be the one the
-- caller handles (and it must not be paused). Only then is anything written, and the stored
-- next tick advances in the same step. So however many tickers race for a tick, one passes
-- the guard and the others change nothing; a process killed at any instant has either
-- written the whole transition or none of it.
--
-- ARGV: 1 schedule hash key  2 due set key  3 schedule name  4 expected revision
--   5 expected next tick ('' = any: a manual run)  6 '1' = must not be paused
--   7 '1' = refuse while the last run is still queued or running (no_overlap)
--   8 next tick to store ('' = keep)  9 its run time (the due set's score)
--   10 runs list key  11 runs kept  12 the run entry (JSON)
--   13 event stream  14 channel  15 maxlen  16 event payload  17 event name  18 metrics key
--   19 n, then n triples (metrics field, increment, 'f' float | 'i' integer)
--   then the job id ('' = no job: a skip), then the fields of lib/submission.lua.
-- Returns {'ok'} | {'gone'} | {'stale'} | {'overlap', job id, status} | the submission's refusal.
local key = ARGV[1]
local state = redis.call('HMGET', key, 'rev', 'next_due', 'paused', 'last_job_id')
if not state[1] then return {'gone'} end
if state[1] ~= ARGV[4] then return {'stale'} end
if ARGV[5] ~= '' and state[2] ~= ARGV[5] then return {'stale'} end
if ARGV[6] == '1' and state[3] == '1' then return {'stale'} end
if ARGV[7] == '1' and state[4] then
  local status = redis.call('HGET', '{{JOB_PREFIX}}' .. state[4], 'status')
  if status == 'queued' or status == 'started' or status == 'scheduled' or status == 'deferred' then
    return {'overlap', state[4], status}
  end
end
local n = tonumber(ARGV[19])
local i = 20 + 3 * n
local job_id = ARGV[i]
if job_id ~= '' then
  local outcome = admit_and_write(ARGV, i + 1)
  if outcome[1] ~= 'ok' then return outcome end
  redis.call('HSET', key, 'last_job_id', job_id)
end
if ARGV[8] ~= '' then
  redis.call('HSET', key, 'next_due', ARGV[8], 'next_run', ARGV[9])
  if state[3] ~= '1' then redis.call('ZADD', ARGV[2], ARGV[9], ARGV[3]) end
end
redis.call('LPUSH', ARGV[10], ARGV[12])
redis.call('LTRIM', ARGV[10], 0, tonumber(ARGV[11]) - 1)
for k = 0, n - 1 do
  local field, amount, kind = ARGV[20 + 3 * k], ARGV[21 + 3 * k], ARGV[22 + 3 * k]
  if kind == 'f' then
    redis.call('HINCRBYFLOAT', ARGV[18], field, amount)
  elseif kind == 's' then
    redis.call('HSET', ARGV[18], field, amount)
  else
    redis.call('HINCRBY', ARGV[18], field, amount)
  end
end
append_schedule_event(ARGV[13], ARGV[14], ARGV[15], ARGV[16], ARGV[18], ARGV[3], ARGV[17])
return {'ok'}
