-- uses: events
-- A running job's progress report (webapp/worker/rqworker.py): its meta saved and a `progress`
-- event recorded, in one step, only while the job's hash exists. A report that arrives after
-- the job is gone (Redis restarted without its data, or a FLUSHALL) must not make the hash anew
-- with nothing but `meta` in it: that stray hash would read as a job without a status.
-- KEYS: 1 the global event stream, 2 the job's hash.
-- ARGV: 1 the meta (RQ's serialized meta), then event.lua's ARGV from its 1st on.
-- Returns the event id, or false when the job is gone (nothing written).
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
redis.call('HSET', KEYS[2], 'meta', ARGV[1])
return append_event(KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
