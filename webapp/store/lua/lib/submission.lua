-- uses: events, queued_job
-- A submission's admission checks and writes (webapp/store/admission.py), from A[base] on: the
-- rate limit, the idempotency key and the queue-depth cap are checked first and, only if all
-- pass, the writes run, so a submission is all-or-nothing. Used by lua/submit.lua (a request's
-- jobs) and lua/schedule_tick.lua (a schedule's run, behind the schedule's own guard).
--
-- Fields, from A[base]:
--   +0 rate-limit key ('' = none)   +1 limit   +2 window (s)   +3 cost (jobs in this request)
--   +4 idempotency key ('' = none)  +5 value to store          +6 ttl (s)
--   +7 queue-depth cap (0 = none)
--   +8 a job key that this submission creates ('' = none): if it exists already, an earlier
--      send of this very submission landed (a retry after a lost reply), and nothing is done
--   +9 n queue keys, then n pairs (queue key, jobs added to it)
--   then the number of commands, then per command: argc, then argc arguments. A command is a
--   Redis command, EVENT (the arguments of append_event) or JOB (of write_queued_job).
local function admit_and_write(A, base)
  local o = base - 1
  if A[o + 9] ~= '' and redis.call('EXISTS', A[o + 9]) == 1 then return {'ok'} end
  local rate_key = A[o + 1]
  if rate_key ~= '' then
    local count = redis.call('INCRBY', rate_key, A[o + 4])
    if redis.call('TTL', rate_key) < 0 then redis.call('EXPIRE', rate_key, A[o + 3]) end
    if count > tonumber(A[o + 2]) then
      return {'limited', redis.call('PTTL', rate_key)}
    end
  end
  local idem_key = A[o + 5]
  if idem_key ~= '' then
    local previous = redis.call('GET', idem_key)
    if previous then return {'duplicate', previous} end
  end
  local cap = tonumber(A[o + 8])
  local nqueues = tonumber(A[o + 10])
  local i = o + 11
  for _ = 1, nqueues do
    if cap > 0 then
      local depth = redis.call('LLEN', A[i])
      if depth + tonumber(A[i + 1]) > cap then return {'full', A[i], depth} end
    end
    i = i + 2
  end
  if idem_key ~= '' then redis.call('SET', idem_key, A[o + 6], 'EX', A[o + 7]) end
  local ncommands = tonumber(A[i])
  i = i + 1
  -- each command is read in place (unpack of a range of A): copying it into a table first
  -- cost more Lua work than the command itself for most of them
  for _ = 1, ncommands do
    local argc = tonumber(A[i])
    local c = i + 1  -- the command's first argument, its name
    i = i + argc + 1
    local name = A[c]
    if name == 'JOB' then
      write_queued_job(A, c + 1)
    elseif name == 'EVENT' then
      append_event(A[c + 1], A[c + 2], A[c + 3], A[c + 4], A[c + 5], A[c + 6], A[c + 7], A[c + 8], A[c + 9], A[c + 10])
    else
      redis.call(unpack(A, c, c + argc - 1))
    end
  end
  return {'ok'}
end
