-- Add a job to the listing index sets and, on the way, sweep a few entries of each set,
-- dropping ids whose job hash is gone. The sweep resumes after the score it stopped at
-- (per set, kept in `sweep_key`) and wraps to the start at the end.
local function index_and_sweep(sets, sweep_key, job_id, score, per_set)
  local function sweep(key, from, count)
    local entries = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, count)
    for j = 1, #entries, 2 do
      if redis.call('EXISTS', '{{JOB_PREFIX}}' .. entries[j]) == 0 then
        redis.call('ZREM', key, entries[j])
      end
    end
    if #entries > 0 then redis.call('HSET', sweep_key, key, entries[#entries]) end
    return #entries / 2
  end
  for _, key in ipairs(sets) do
    redis.call('ZADD', key, score, job_id)
    local from = redis.call('HGET', sweep_key, key)
    local done = 0
    if from then done = sweep(key, '(' .. from, per_set) end
    if done < per_set then
      -- reached the newest entry: wrap around to the oldest
      redis.call('HDEL', sweep_key, key)
      sweep(key, '-inf', per_set - done)
    end
  end
end
