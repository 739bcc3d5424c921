-- A job as one snapshot (webapp/store/jobreads.py): its hash, its latest results and the id of
-- its latest event, in one atomic step, so the snapshot reflects every event up to that id and
-- a client can resume the job's event stream from it without a gap.
-- KEYS: 1 the job hash, 2 its results stream, 3 its events stream.
-- ARGV: 1 how many results to read ('' = all that RQ keeps).
local job = redis.call('HGETALL', KEYS[1])
if #job == 0 then return {} end
local results
if ARGV[1] == '' then
  results = redis.call('XREVRANGE', KEYS[2], '+', '-')
else
  results = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[1])
end
return {job, results, redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)}
