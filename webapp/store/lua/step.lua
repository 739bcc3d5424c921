-- uses: events, limits, clock
-- STEP, the fast worker's one call per job (webapp/store/step.py builds its arguments): FINISH
-- the job just run, if any, and CLAIM the next, writing exactly what RQ 3's own worker writes
-- (job hash fields, the started registry entry `<job id>:<execution id>`, the execution hash and
-- its per-job registry, the worker's execution index, the result stream, the finished registry,
-- the worker's counters), so RQ's API, `rq info` and rq-dashboard read the jobs as usual.
-- CLAIM is atomic: the job id leaves its queue list and enters the started registry in this one
-- script, so a job is always either queued or registered as started.
--
-- KEYS: 1 global event stream, 2 worker hash, 3 worker execution index, then the queue lists in
-- priority order (n = A.queue_count), then their wake lists (n).
-- ARGV: the fields of webapp/store/step.py, by name in `A` below.
-- Returns {finish status, [queue index, job id, job hash as a flat list, the claim's clock]}. The
-- clock is A.now, or Redis's when A.now is empty (a claim sent behind the idle worker's BLPOP,
-- which runs when the wait ends: lib/clock.lua gives A.now, A.now_text and A.event_at). Finish status: 1
-- finished, 0 the job has dependents (nothing written: the caller uses RQ's own path, which
-- enqueues them), -1 its hash vanished while it ran, false when there was nothing to finish.
-- Limits per key (lib/limits.lua) add one reply shape, {finish status, wait}, when no job was
-- claimed: wait 0 = jobs were parked and more may be claimable (call again at once), else the
-- Unix time at which a parked job's key admits again.
{{STEP_ARGS}}

-- Whole numbers go to Redis through '%d': Lua's own number-to-text ('%.14g') costs a lot more.
local function int(n) return string.format('%d', n) end

-- The worker's hash: RQ's counters and state. It is never recreated once expired (only in
-- part), so it is checked once per call; its state is written once per call, after the claim.
local worker_exists = nil
local function worker_alive()
  if worker_exists == nil then worker_exists = redis.call('EXISTS', KEYS[2]) == 1 end
  return worker_exists
end

local function event(job_id, payload, ttl, name, at, webhook_url, began)
  append_event(KEYS[1], A.channel, A.events_maxlen, A.job_events_maxlen, ttl, job_id, payload, name, at, webhook_url, began)
end

local function finish()
  local job_id, origin, execution_id = A.done_job_id, A.done_queue, A.done_execution_id
  local job_key = '{{JOB_PREFIX}}' .. job_id
  local dependents = '{{JOB_PREFIX}}' .. job_id .. '{{DEPENDENTS_SUFFIX}}'
  if redis.call('SCARD', dependents) > 0 then return 0 end
  local composite = job_id .. ':' .. execution_id
  local execution_key = '{{EXECUTION_PREFIX}}' .. composite
  local status = redis.call('HGET', job_key, 'status')
  -- a retry after a lost reply: the first call did it all (and deleted the execution)
  if status == 'finished' and redis.call('DEL', execution_key) == 0 then return 1 end
  -- limits: the job's slot is given back, the key's oldest parked job woken (lib/limits.lua)
  if A.done_limit_key ~= '' then limit_release(A.done_limit_key, job_id) end
  if status ~= 'finished' then redis.call('DEL', execution_key) end
  redis.call('ZREM', '{{STARTED_PREFIX}}' .. origin, composite)
  redis.call('ZREM', '{{EXECUTIONS_PREFIX}}' .. job_id, execution_id)
  redis.call('SREM', KEYS[3], composite)
  if worker_alive() then
    redis.call('HINCRBY', KEYS[2], 'successful_job_count', '1')
    redis.call('HINCRBYFLOAT', KEYS[2], 'total_working_time', A.done_working_time)
  end
  if not status then return -1 end  -- the job hash vanished while it ran
  local ttl = A.done_result_ttl
  redis.call('HSET', job_key, 'status', 'finished', 'ended_at', A.done_ended_text, 'last_heartbeat', A.done_ended_text)
  local result_key = '{{RESULTS_PREFIX}}' .. job_id
  local result = {'type', '1', 'worker_name', A.worker_name}
  if A.done_return_value ~= '' then table.insert(result, 'return_value'); table.insert(result, A.done_return_value) end
  table.insert(result, 'execution_id'); table.insert(result, execution_id)
  table.insert(result, 'execution_started_at'); table.insert(result, A.done_started)
  table.insert(result, 'execution_ended_at'); table.insert(result, A.done_ended)
  redis.call('XADD', result_key, 'MAXLEN', '~', '10', '*', unpack(result))
  if ttl == '-1' then
    redis.call('PERSIST', result_key)
    redis.call('ZADD', '{{FINISHED_PREFIX}}' .. origin, '+inf', job_id)
  else
    redis.call('EXPIRE', result_key, ttl)
    redis.call('ZADD', '{{FINISHED_PREFIX}}' .. origin, int(math.floor(tonumber(A.done_ended)) + tonumber(ttl)), job_id)
    redis.call('EXPIRE', job_key, ttl)
    -- RQ also expires the dependents' set: SCARD found it empty, so it does not exist
    redis.call('EXPIRE', '{{DEPENDENCIES_PREFIX}}' .. job_id .. ':dependencies', ttl)
  end
  event(job_id, A.done_event, A.done_event_ttl, 'finished', A.done_ended, nil, A.done_started)
  return 1
end

-- a paused queue (webapp/store/pauses.py) is skipped: its jobs stay queued
local function is_paused(queue_key)
  return redis.call('HEXISTS', '{{PAUSED_QUEUES}}', string.sub(queue_key, #'{{QUEUE_PREFIX}}' + 1)) == 1
end

-- limits (lib/limits.lua): true when the job's meta carries a limit whose key is at it, and the
-- job was parked. The plain find spares jobs without a limit a second decode of their meta.
local MAX_PARKED_PER_CALL = 32  -- jobs parked by one claim before it returns (the worker calls again)

local function parked_by_limit(job_id, job_key, fields, now_ts)
  if not (fields.meta and string.find(fields.meta, '"limit"', 1, true)) then return false end
  local ok, meta = pcall(cjson.decode, fields.meta)
  local limit = ok and type(meta) == 'table' and meta['limit']
  if type(limit) ~= 'table' or type(limit['key']) ~= 'string' then return false end
  local ttl = tonumber(A.heartbeat_ttl)  -- the slot's lease: as the started registry's score below
  local timeout = tonumber(fields.timeout)
  if timeout and timeout ~= -1 then ttl = timeout + 60 end
  local due = limit_admit(job_id, limit, now_ts, ttl, job_id .. ':' .. A.execution_id)
  if not due then return false end
  limit_park(job_id, job_key, fields.origin, limit['key'], due, now_ts)
  return true
end

-- The job hash as a flat list (HGETALL), the fields CLAIM reads, and where the fields it writes
-- sit in the list: the list is patched and returned to the worker (one read, not two). A scan
-- with plain comparisons (Lua strings are interned): building tables from the list costs more.
local function read_job(job_key)
  local flat = redis.call('HGETALL', job_key)
  local fields = {}
  local at_status, at_started, at_heartbeat, at_worker
  for k = 1, #flat, 2 do
    local name = flat[k]
    if name == 'origin' then fields.origin = flat[k + 1]
    elseif name == 'timeout' then fields.timeout = flat[k + 1]
    elseif name == 'meta' then fields.meta = flat[k + 1]
    elseif name == 'description' then fields.description = flat[k + 1]
    elseif name == 'status' then at_status = k + 1
    elseif name == 'started_at' then at_started = k + 1
    elseif name == 'last_heartbeat' then at_heartbeat = k + 1
    elseif name == 'worker_name' then at_worker = k + 1
    end
  end
  return flat, fields, {at_status, at_started, at_heartbeat, at_worker}
end

-- CLAIM's writes on the job hash, as RQ's worker writes them, in `read_job`'s position order
local function started_values()
  return {'started', A.now_text, A.now_text, A.worker_name}
end
local STARTED_NAMES = {'status', 'started_at', 'last_heartbeat', 'worker_name'}

local function claim()
  local n = tonumber(A.queue_count)
  local now_ts = tonumber(A.now)
  local any_paused = redis.call('EXISTS', '{{PAUSED_QUEUES}}') == 1
  local parked = 0
  for i = 1, n do
    local queue_key, wake = KEYS[3 + i], KEYS[3 + n + i]
    local job_id = false
    if not (any_paused and is_paused(queue_key)) then job_id = redis.call('LPOP', queue_key) end
    while job_id do
      local job_key = '{{JOB_PREFIX}}' .. job_id
      local flat, fields, position = read_job(job_key)
      if fields.origin and parked_by_limit(job_id, job_key, fields, now_ts) then  -- limits: take the next id
        parked = parked + 1
        if parked >= MAX_PARKED_PER_CALL then return 0 end
      elseif fields.origin then
        local origin = fields.origin
        -- heartbeat ttl as RQ's SimpleWorker computes it: job timeout + 60, or the default
        local ttl = tonumber(A.heartbeat_ttl)
        local timeout = tonumber(fields.timeout)
        if timeout and timeout ~= -1 then ttl = timeout + 60 end
        local now_whole = math.floor(now_ts)
        local composite = job_id .. ':' .. A.execution_id
        local execution_key = '{{EXECUTION_PREFIX}}' .. composite
        redis.call('HSET', execution_key, 'id', A.execution_id, 'job_id', job_id, 'created_at', A.now,
          'last_heartbeat', A.now, 'worker_name', A.worker_name)
        redis.call('EXPIRE', execution_key, int(ttl))
        local executions = '{{EXECUTIONS_PREFIX}}' .. job_id
        redis.call('ZADD', executions, int(now_whole + ttl + 60), A.execution_id)
        redis.call('EXPIRE', executions, int(ttl + 60))
        redis.call('ZADD', '{{STARTED_PREFIX}}' .. origin, int(now_whole + ttl), composite)
        redis.call('SADD', KEYS[3], composite)
        redis.call('EXPIRE', KEYS[3], int(ttl + 60))
        if worker_alive() then
          redis.call('HSET', KEYS[2], 'state', 'busy', 'last_heartbeat', A.now_text)
          if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], int(ttl)) end
        end
        local values = started_values()
        redis.call('HSET', job_key, 'status', values[1], 'started_at', values[2], 'last_heartbeat', values[3],
          'worker_name', values[4])
        redis.call('PERSIST', job_key)
        for w = 1, 4 do
          if position[w] then flat[position[w]] = values[w] else
            flat[#flat + 1] = STARTED_NAMES[w]; flat[#flat + 1] = values[w] end
        end
        -- wake tokens: at most one per queued job, at least one while jobs remain
        local remaining = redis.call('LLEN', queue_key)
        if remaining == 0 then
          redis.call('DEL', wake)
        elseif redis.call('LLEN', wake) == 0 then
          redis.call('RPUSH', wake, '1')
        else
          redis.call('LTRIM', wake, '0', int(remaining - 1))
        end
        local name, owner, schedule, webhook_url = nil, nil, nil, nil
        if fields.meta then
          local ok, meta = pcall(cjson.decode, fields.meta)
          if ok and type(meta) == 'table' then
            if type(meta['name']) == 'string' then name = meta['name'] end
            if type(meta['owner']) == 'string' then owner = meta['owner'] end
            if type(meta['schedule']) == 'string' then schedule = meta['schedule'] end
            if meta['webhook'] then webhook_url = webhook_target(meta['webhook'], 'started') end
          end
        end
        if not name and fields.description then  -- enqueued by plain RQ code: name it from the catalog
          local names = cjson.decode([==[{{NAMES_JSON}}]==])  -- by import path
          name = names[string.match(fields.description, '^([^(]*)')]  -- RQ's description: "<path>(<args>)"
        end
        local payload = '{"event":"started","job_id":' .. cjson.encode(job_id) .. ',"name":'
          .. (name and cjson.encode(name) or 'null') .. ',"queue":' .. cjson.encode(origin)
          .. ',"status":"started","at":' .. cjson.encode(A.event_at) .. ',"worker":' .. cjson.encode(A.worker_name)
        if owner then payload = payload .. ',"owner":' .. cjson.encode(owner) end
        if schedule then payload = payload .. ',"schedule":' .. cjson.encode(schedule) end
        event(job_id, payload .. '}', A.events_ttl, 'started', A.now, webhook_url)
        return {i, job_id, flat}
      end
      -- the job hash is gone (deleted or expired): skip the id, as RQ's dequeue does (or it was parked)
      job_id = redis.call('LPOP', queue_key)
    end
  end
  for i = 1, n do redis.call('DEL', KEYS[3 + n + i]) end
  -- limits: nothing to claim, so this worker is idle; wake the keys whose rate window admits again
  local promoted, next_due = limit_promote_due(now_ts, 16)
  if promoted > 0 or parked > 0 then return 0 end
  return next_due
end

local finished = false
if A.done_job_id ~= '' then finished = finish() end
local claimed = false
if A.claim == '1' then
  if A.now == '' then A.now, A.now_text, A.event_at = redis_clock() end
  claimed = claim()
end
-- a job was finished and none claimed: the worker is idle (a claim wrote `busy` itself)
if finished and finished ~= 0 and type(claimed) ~= 'table' and worker_alive() then
  redis.call('HSET', KEYS[2], 'state', 'idle')
end
if type(claimed) == 'table' then return {finished, claimed[1], claimed[2], claimed[3], A.now} end
if claimed then return {finished, claimed} end  -- limits: 0 or the next due time
return {finished}
