-- uses: schedule_events
-- A change to a schedule's definition or state (create, update, pause, resume, delete), guarded
-- by the schedule's revision so two writers never overwrite each other unseen
-- (webapp/store/schedules.py builds the commands).
--
-- ARGV: 1 schedule hash key   2 expected revision: '' = the schedule must not exist,
--   '*' = any revision, else the exact revision
--   3 event stream  4 channel  5 maxlen  6 event payload ('' = none)  7 metrics key
--   8 schedule name  9 event name
--   10 the number of commands, then per command: argc, then argc arguments.
-- Returns {'ok'}, or {'exists'}, {'gone'}, {'stale', current revision}: nothing was written.
local rev = redis.call('HGET', ARGV[1], 'rev')
if ARGV[2] == '' then
  if rev then return {'exists'} end
elseif not rev then
  return {'gone'}
elseif ARGV[2] ~= '*' and ARGV[2] ~= rev then
  return {'stale', rev}
end
local i = 11
for _ = 1, tonumber(ARGV[10]) do
  local argc = tonumber(ARGV[i])
  local c = {}
  for k = 1, argc do c[k] = ARGV[i + k] end
  i = i + argc + 1
  redis.call(unpack(c))
end
append_schedule_event(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
return {'ok'}
