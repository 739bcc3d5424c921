-- Cancel a queued job (webapp/store/waiting.py): take it out of its queue list, searched from
-- the tail (a bulk cancel walks newest first, and the newest jobs are at the tail), and only if
-- it was still there (not yet taken by a worker) mark it canceled as RQ's cancel does: its
-- status, and the canceled registry.
-- KEYS[1] the queue list, KEYS[2] the job hash, KEYS[3] the queue's canceled registry.
-- ARGV[1] the job id, ARGV[2] the registry score (now, Unix seconds). Returns 1, or 0 if not queued.
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], 'status', 'canceled')
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
