-- Concurrency and rate limits per key (webapp/store/limits.py). A job carries its limit in its
-- meta: {"key": k, "concurrency": c, "rate": n, "per": seconds} (concurrency or rate may be
-- absent). Per key: the running jobs by lease expiry (a sorted set), the starts inside the rate
-- window (a sorted set, a sliding log: at most n starts in any `per` seconds), and the parked
-- jobs, oldest first (a list). A parked job is `deferred` to RQ (status and deferred registry)
-- with `waiting_for` = `limit` on its hash; it goes back to the head of its queue when a slot
-- frees (release) or its key's rate window admits again (promote_due).

local function limit_spec(lim)
  return tonumber(lim['concurrency']) or 0, tonumber(lim['rate']) or 0, tonumber(lim['per']) or 0
end

-- Admit a job to its key's slot and rate window: nil when admitted (the slot is taken), else
-- when it may be admitted again (0: when a running job of the key ends).
local function limit_admit(job_id, lim, now, lease, start_member)
  local key = lim['key']
  local concurrency, rate, per = limit_spec(lim)
  local running = '{{LIMIT_RUNNING_PREFIX}}' .. key
  redis.call('HSET', '{{LIMIT_SPECS}}', key, concurrency .. ' ' .. rate .. ' ' .. per)
  redis.call('ZADD', '{{LIMIT_KEYS}}', now, key)
  redis.call('ZREMRANGEBYSCORE', running, '-inf', '(' .. now)  -- leases past their end: a lost holder
  if concurrency > 0 and redis.call('ZCARD', running) >= concurrency then return 0 end
  if rate > 0 and per > 0 then
    local starts = '{{LIMIT_STARTS_PREFIX}}' .. key
    redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - per)
    if redis.call('ZCARD', starts) >= rate then
      local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
      return tonumber(oldest[2]) + per
    end
    redis.call('ZADD', starts, now, start_member)
    redis.call('EXPIRE', starts, math.ceil(per) + 60)
  end
  redis.call('ZADD', running, now + lease, job_id)
  if redis.call('TTL', running) < lease + 60 then redis.call('EXPIRE', running, lease + 60) end
  return nil
end

-- Park a job that was not admitted: RQ sees a deferred job; `due` > 0 is when the key's rate
-- window admits again (the earliest is kept).
local function limit_park(job_id, job_key, origin, key, due, now)
  redis.call('RPUSH', '{{LIMIT_PARKED_PREFIX}}' .. key, job_id)
  redis.call('HSET', job_key, 'status', 'deferred', 'waiting_for', 'limit')
  redis.call('ZADD', '{{DEFERRED_PREFIX}}' .. origin, now, job_id)
  if due > 0 then
    local current = redis.call('ZSCORE', '{{LIMIT_DUE}}', key)
    if not current or tonumber(current) > due then redis.call('ZADD', '{{LIMIT_DUE}}', due, key) end
  end
end

-- Move up to `count` parked jobs of `key` back to the head of their queues, oldest first, each
-- with a wake token. Ids whose job is no longer parked (canceled, deleted, expired) are dropped.
local function limit_promote(key, count)
  local parked = '{{LIMIT_PARKED_PREFIX}}' .. key
  local moved = {}
  while #moved < count do
    local job_id = redis.call('LPOP', parked)
    if not job_id then break end
    local job_key = '{{JOB_PREFIX}}' .. job_id
    local f = redis.call('HMGET', job_key, 'status', 'waiting_for', 'origin')
    if f[1] == 'deferred' and f[2] == 'limit' and f[3] then
      redis.call('HSET', job_key, 'status', 'queued')
      redis.call('HDEL', job_key, 'waiting_for')
      redis.call('ZREM', '{{DEFERRED_PREFIX}}' .. f[3], job_id)
      table.insert(moved, {job_id, f[3]})
    end
  end
  for i = #moved, 1, -1 do  -- pushed at the head newest first, so the oldest runs first
    redis.call('LPUSH', '{{QUEUE_PREFIX}}' .. moved[i][2], moved[i][1])
    redis.call('RPUSH', '{{WAKE_PREFIX}}' .. moved[i][2], '1')
  end
  return #moved
end

-- A key with nothing running and nothing parked leaves the index of active keys.
local function limit_forget_if_idle(key)
  if redis.call('EXISTS', '{{LIMIT_RUNNING_PREFIX}}' .. key) == 0
    and redis.call('EXISTS', '{{LIMIT_PARKED_PREFIX}}' .. key) == 0 then
    redis.call('ZREM', '{{LIMIT_KEYS}}', key)
    redis.call('ZREM', '{{LIMIT_DUE}}', key)
    redis.call('HDEL', '{{LIMIT_SPECS}}', key)
  end
end

-- A limited job ended (or was recovered): give its slot back and wake the key's oldest parked
-- job. Idempotent: a second release of the same job changes nothing.
local function limit_release(key, job_id)
  if redis.call('ZREM', '{{LIMIT_RUNNING_PREFIX}}' .. key, job_id) == 1 then
    limit_promote(key, 1)
  end
  limit_forget_if_idle(key)
end

-- How many more jobs of `key` its limits admit now (at most `cap`), from its latest limit.
local function limit_free(key, now, cap)
  local spec = redis.call('HGET', '{{LIMIT_SPECS}}', key)
  if not spec then return cap, nil end
  local concurrency, rate, per = string.match(spec, '^(%S+) (%S+) (%S+)$')
  concurrency, rate, per = tonumber(concurrency), tonumber(rate), tonumber(per)
  local free, due = cap, nil
  if concurrency > 0 then
    local running = '{{LIMIT_RUNNING_PREFIX}}' .. key
    redis.call('ZREMRANGEBYSCORE', running, '-inf', '(' .. now)
    free = math.min(free, concurrency - redis.call('ZCARD', running))
  end
  if rate > 0 and per > 0 then
    local starts = '{{LIMIT_STARTS_PREFIX}}' .. key
    redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - per)
    local in_window = redis.call('ZCARD', starts)
    if in_window >= rate then
      local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
      due = tonumber(oldest[2]) + per
    end
    free = math.min(free, rate - in_window)
  end
  return free, due
end

-- Promote the parked jobs of keys whose rate window admits again (at most `max_keys` keys).
-- Returns how many jobs were promoted and the next due time (nil when none).
local function limit_promote_due(now, max_keys)
  local promoted = 0
  local due_keys = redis.call('ZRANGEBYSCORE', '{{LIMIT_DUE}}', '-inf', now, 'LIMIT', 0, max_keys)
  for _, key in ipairs(due_keys) do
    redis.call('ZREM', '{{LIMIT_DUE}}', key)
    local free, due = limit_free(key, now, 16)
    if free > 0 then promoted = promoted + limit_promote(key, free) end
    if due and redis.call('EXISTS', '{{LIMIT_PARKED_PREFIX}}' .. key) == 1 then
      redis.call('ZADD', '{{LIMIT_DUE}}', due, key)
    end
    limit_forget_if_idle(key)
  end
  local first = redis.call('ZRANGE', '{{LIMIT_DUE}}', 0, 0, 'WITHSCORES')
  return promoted, first[2]
end
