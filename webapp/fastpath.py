"""The fast worker's two Redis scripts: CLAIM a job and FINISH a successful one.

Both write exactly what RQ 3's own worker writes (job hash fields, the StartedJobRegistry
entry keyed `<job id>:<execution id>`, the execution hash and its per-job registry, the
worker's execution index, the result stream, the FinishedJobRegistry, the worker's
counters), so RQ's API, `rq info` and rq-dashboard read the jobs as usual. Key names
come from RQ's own classes; `tests/test_fastworker_compat.py` pins them against the
installed RQ so an incompatible RQ upgrade fails loudly.

CLAIM is one atomic step: the job id leaves its queue list and enters the started
registry in the same script, so a job is always either queued or registered as started,
never only in a worker's memory (RQ's multi-queue `BLPOP` leaves that window open).

Wake-up lists (`jobsvc:wake:<queue>`): an enqueuer pushes a token beside the job; an idle
worker blocks on its queues' wake lists. CLAIM keeps at most one token per queued job and at
least one while jobs remain, so a burst wakes every idle worker in turn and tokens never pile
up; jobs pushed by plain RQ code (no token) are found by the idle wait's short timeout.
"""

from __future__ import annotations

from rq.defaults import RQ_KEY_PREFIX
from rq.executions import ExecutionRegistry
from rq.job import Job
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from rq.results import Result

from webapp.events import JOB_STREAM_PREFIX

WAKE_PREFIX = "jobsvc:wake:"

# Key prefixes, from RQ's own templates (one job id or queue name appended).
JOB_PREFIX = Job.key_for("")
RESULT_PREFIX = Result.get_key("")
STARTED_PREFIX = StartedJobRegistry.key_template.format("")
FINISHED_PREFIX = FinishedJobRegistry.key_template.format("")
EXECUTIONS_PREFIX = ExecutionRegistry.key_template.format("")
EXECUTION_PREFIX = f"{RQ_KEY_PREFIX}:execution:"


def wake_key(queue_name: str) -> str:
    """The wake-up list an enqueuer pushes to beside a job for `queue_name`."""
    return WAKE_PREFIX + queue_name


# Appends one event exactly as webapp.events does (global stream, job stream, publish).
_EVENT_LUA = """
local function append_event(job_id, payload, channel, maxlen, ttl)
  local id = redis.call('XADD', KEYS[#KEYS], 'MAXLEN', '~', maxlen, '*', 'job_id', job_id, 'data', payload)
  local job_stream = ARGV_EVENT_PREFIX .. job_id
  redis.call('XADD', job_stream, id, 'data', payload)
  redis.call('EXPIRE', job_stream, ttl)
  redis.call('PUBLISH', channel, '{"id":"' .. id .. '",' .. string.sub(payload, 2))
  return id
end
"""

# KEYS: the queue lists in priority order (n), their wake lists (n), the worker hash, the
# worker's execution index, the global event stream (last).
# ARGV: n, worker name, now (RQ's text format), now (unix seconds, float), execution id,
# default heartbeat ttl, events channel, events maxlen, events ttl, event time (ISO 8601).
# Returns {queue index, job id, job hash as a flat list} or false when every queue is empty.
CLAIM_LUA = (
    f"""
local ARGV_EVENT_PREFIX = '{JOB_STREAM_PREFIX}'
"""
    + _EVENT_LUA
    + f"""
local n = tonumber(ARGV[1])
local worker_name, now_text, now_ts, execution_id = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
for i = 1, n do
  local job_id = redis.call('LPOP', KEYS[i])
  while job_id do
    local job_key = '{JOB_PREFIX}' .. job_id
    local fields = redis.call('HMGET', job_key, 'origin', 'timeout', 'meta')
    if fields[1] then
      local origin = fields[1]
      -- heartbeat ttl as RQ's SimpleWorker computes it: job timeout + 60, or the default
      local ttl = tonumber(ARGV[6])
      local timeout = tonumber(fields[2])
      if timeout and timeout ~= -1 then ttl = timeout + 60 end
      local composite = job_id .. ':' .. execution_id
      local execution_key = '{EXECUTION_PREFIX}' .. composite
      redis.call('HSET', execution_key, 'id', execution_id, 'job_id', job_id, 'created_at', ARGV[4],
        'last_heartbeat', ARGV[4], 'worker_name', worker_name)
      redis.call('EXPIRE', execution_key, ttl)
      local executions = '{EXECUTIONS_PREFIX}' .. job_id
      redis.call('ZADD', executions, math.floor(now_ts) + ttl + 60, execution_id)
      redis.call('EXPIRE', executions, ttl + 60)
      redis.call('ZADD', '{STARTED_PREFIX}' .. origin, math.floor(now_ts) + ttl, composite)
      local worker_key, worker_executions = KEYS[2 * n + 1], KEYS[2 * n + 2]
      redis.call('SADD', worker_executions, composite)
      redis.call('EXPIRE', worker_executions, ttl + 60)
      redis.call('HSET', worker_key, 'state', 'busy', 'last_heartbeat', now_text)
      if redis.call('TTL', worker_key) < ttl then redis.call('EXPIRE', worker_key, ttl) end
      redis.call('HSET', job_key, 'status', 'started', 'started_at', now_text, 'last_heartbeat', now_text,
        'worker_name', worker_name)
      redis.call('PERSIST', job_key)
      -- wake tokens: at most one per queued job, at least one while jobs remain
      local remaining = redis.call('LLEN', KEYS[i])
      if remaining == 0 then
        redis.call('DEL', KEYS[n + i])
      elseif redis.call('LLEN', KEYS[n + i]) == 0 then
        redis.call('RPUSH', KEYS[n + i], '1')
      else
        redis.call('LTRIM', KEYS[n + i], 0, remaining - 1)
      end
      local name = nil
      if fields[3] then
        local ok, meta = pcall(cjson.decode, fields[3])
        if ok and type(meta) == 'table' and type(meta['name']) == 'string' then name = meta['name'] end
      end
      local payload = '{{"event":"started","job_id":' .. cjson.encode(job_id) .. ',"name":'
        .. (name and cjson.encode(name) or 'null') .. ',"queue":' .. cjson.encode(origin)
        .. ',"status":"started","at":' .. cjson.encode(ARGV[10]) .. ',"worker":' .. cjson.encode(worker_name) .. '}}'
      append_event(job_id, payload, ARGV[7], ARGV[8], ARGV[9])
      return {{i, job_id, redis.call('HGETALL', job_key)}}
    end
    -- the job hash is gone (deleted or expired): skip the id, as RQ's dequeue does
    job_id = redis.call('LPOP', KEYS[i])
  end
end
for i = n + 1, 2 * n do redis.call('DEL', KEYS[i]) end
return false
"""
)

# KEYS: job hash, result stream, finished registry, started registry, the job's execution
# registry, execution hash, worker hash, worker execution index, dependents set,
# dependencies set, global event stream (last).
# ARGV: composite key, execution id, ended at (RQ text), result ttl, now (unix s), worker name,
# return value (base64 of the serialized value, '' for None), execution started/ended (unix s),
# working time (s), events channel, maxlen, event ttl, event payload (JSON object), job id.
# Returns 1 when finished, 0 when the job has dependents (the caller uses RQ's own path,
# which enqueues them), -1 when the job hash vanished while it ran.
FINISH_LUA = (
    f"""
local ARGV_EVENT_PREFIX = '{JOB_STREAM_PREFIX}'
"""
    + _EVENT_LUA
    + """
if redis.call('SCARD', KEYS[9]) > 0 then return 0 end
local job_exists = redis.call('EXISTS', KEYS[1]) == 1
-- the execution ends either way
redis.call('DEL', KEYS[6])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('SREM', KEYS[8], ARGV[1])
redis.call('HINCRBY', KEYS[7], 'successful_job_count', 1)
redis.call('HINCRBYFLOAT', KEYS[7], 'total_working_time', ARGV[10])
redis.call('HSET', KEYS[7], 'state', 'idle')
if not job_exists then return -1 end
local ttl = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'status', 'finished', 'ended_at', ARGV[3], 'last_heartbeat', ARGV[3])
local result = {'type', '1', 'worker_name', ARGV[6]}
if ARGV[7] ~= '' then table.insert(result, 'return_value'); table.insert(result, ARGV[7]) end
table.insert(result, 'execution_id'); table.insert(result, ARGV[2])
table.insert(result, 'execution_started_at'); table.insert(result, ARGV[8])
table.insert(result, 'execution_ended_at'); table.insert(result, ARGV[9])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10, '*', unpack(result))
if ttl == -1 then
  redis.call('PERSIST', KEYS[2])
  redis.call('ZADD', KEYS[3], '+inf', ARGV[15])
else
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('ZADD', KEYS[3], math.floor(tonumber(ARGV[5])) + ttl, ARGV[15])
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[9], ttl)
  redis.call('EXPIRE', KEYS[10], ttl)
end
append_event(ARGV[15], ARGV[14], ARGV[11], ARGV[12], ARGV[13])
return 1
"""
)
