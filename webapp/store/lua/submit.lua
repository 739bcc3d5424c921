-- uses: events, index
-- A submission's admission checks and writes in one step (webapp/store/admission.py): the rate
-- limit, the idempotency key and the queue-depth cap are checked first and, only if all pass,
-- the writes run, so a submission is one round trip and all-or-nothing.
--
-- ARGV:
--   1 rate-limit key ('' = none)   2 limit   3 window (s)   4 cost (jobs in this request)
--   5 idempotency key ('' = none)  6 value to store          7 ttl (s)
--   8 queue-depth cap (0 = none)
--   9 a job key that this submission creates ('' = none): if it exists already, an earlier
--     send of this very submission landed (a retry after a lost reply), and nothing is done
--  10 n queue keys, then n pairs (queue key, jobs added to it)
--   then the number of commands, then per command: argc, then argc arguments. A command is a
--   Redis command, or EVENT (the arguments of append_event) or INDEX (n sets, the sets, the
--   sweep key, job id, score, entries to sweep per set).
if ARGV[9] ~= '' and redis.call('EXISTS', ARGV[9]) == 1 then return {'ok'} end
local rate_key = ARGV[1]
if rate_key ~= '' then
  local count = redis.call('INCRBY', rate_key, ARGV[4])
  if redis.call('TTL', rate_key) < 0 then redis.call('EXPIRE', rate_key, ARGV[3]) end
  if count > tonumber(ARGV[2]) then
    return {'limited', redis.call('PTTL', rate_key)}
  end
end
local idem_key = ARGV[5]
if idem_key ~= '' then
  local previous = redis.call('GET', idem_key)
  if previous then return {'duplicate', previous} end
end
local cap = tonumber(ARGV[8])
local nqueues = tonumber(ARGV[10])
local i = 11
for _ = 1, nqueues do
  if cap > 0 then
    local depth = redis.call('LLEN', ARGV[i])
    if depth + tonumber(ARGV[i + 1]) > cap then return {'full', ARGV[i], depth} end
  end
  i = i + 2
end
if idem_key ~= '' then redis.call('SET', idem_key, ARGV[6], 'EX', ARGV[7]) end
local ncommands = tonumber(ARGV[i])
i = i + 1
for _ = 1, ncommands do
  local argc = tonumber(ARGV[i])
  local c = {}
  for k = 1, argc do c[k] = ARGV[i + k] end
  i = i + argc + 1
  if c[1] == 'EVENT' then
    append_event(c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], tonumber(c[10]), c[11])
  elseif c[1] == 'INDEX' then
    local nsets = tonumber(c[2])
    local sets = {}
    for k = 1, nsets do sets[k] = c[2 + k] end
    index_and_sweep(sets, c[3 + nsets], c[4 + nsets], c[5 + nsets], tonumber(c[6 + nsets]))
  else
    redis.call(unpack(c))
  end
end
return {'ok'}
