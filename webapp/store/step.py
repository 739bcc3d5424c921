"""The fast worker's Redis script: FINISH a successful job and CLAIM the next.

Both write exactly what RQ 3's own worker writes (job hash fields, the StartedJobRegistry
entry keyed `<job id>:<execution id>`, the execution hash and its per-job registry, the
worker's execution index, the result stream, the FinishedJobRegistry, the worker's
counters), so RQ's API, `rq info` and rq-dashboard read the jobs as usual. Key names
come from RQ's own classes; `tests/test_fastworker_compat.py` pins them against the
installed RQ so an incompatible RQ upgrade fails loudly.

Both are one script, STEP, called once per job: it FINISHes the job just run (if any) and
CLAIMs the next, so a busy worker makes one round trip per job. CLAIM is atomic: the job id
leaves its queue list and enters the started registry in the same script, so a job is always
either queued or registered as started, never only in a worker's memory (RQ's multi-queue
`BLPOP` leaves that window open).

Wake-up lists (`jobsvc:wake:<queue>`): an enqueuer pushes a token beside the job; an idle
worker blocks on its queues' wake lists. CLAIM keeps at most one token per queued job and at
least one while jobs remain, so a burst wakes every idle worker in turn and tokens never pile
up; jobs pushed by plain RQ code (no token) are found by the idle wait's short timeout.
"""

from __future__ import annotations

import json

from redis import Redis
from rq.defaults import RQ_KEY_PREFIX
from rq.executions import ExecutionRegistry
from rq.job import Job
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from rq.results import Result

from webapp.events import JOB_STREAM_PREFIX
from webapp.metrics import METRICS_FUNCTION

WAKE_PREFIX = "jobsvc:wake:"

# Key prefixes, from RQ's own templates (one job id or queue name appended).
JOB_PREFIX = Job.key_for("")
RESULT_PREFIX = Result.get_key("")
STARTED_PREFIX = StartedJobRegistry.key_template.format("")
FINISHED_PREFIX = FinishedJobRegistry.key_template.format("")
EXECUTIONS_PREFIX = ExecutionRegistry.key_template.format("")
EXECUTION_PREFIX = f"{RQ_KEY_PREFIX}:execution:"
# A job's dependents / dependencies sets, as (before id, after id): RQ 3.0 writes the latter
# with a doubled colon (`rq:job::<id>:dependencies`), so both are taken from RQ itself.
_probe = Job("PROBE", connection=Redis())
DEPENDENTS_KEY = tuple(_probe.dependents_key.split("PROBE"))
DEPENDENCIES_KEY = tuple(_probe.dependencies_key.split("PROBE"))
del _probe


def wake_key(queue_name: str) -> str:
    """The wake-up list an enqueuer pushes to beside a job for `queue_name`."""
    return WAKE_PREFIX + queue_name


# KEYS: global event stream, worker hash, worker execution index, the queue lists in
# priority order (n), their wake lists (n).
# ARGV (claim): 1 n, 2 worker name, 3 now (RQ's text format), 4 now (unix s), 5 new execution
# id, 6 default heartbeat ttl, 7 events channel, 8 events maxlen, 9 events default ttl,
# 10 event time (ISO 8601), 11 '1' to claim a job, '0' not to;
# ARGV (finish, when 12 is not ''): 12 job id, 13 its queue, 14 its execution id, 15 ended at
# (RQ text), 16 result ttl, 17 ended at (unix s), 18 return value (base64 of the serialized
# value, '' for None), 19 execution started at (unix s), 20 working time (s), 21 event ttl,
# 22 the `finished` event (a JSON object);
# ARGV (last, always): the approximate length a job's event stream is trimmed to.
# Returns {finish status, [queue index, job id, job hash as a flat list]}. Finish status:
# 1 finished, 0 the job has dependents (nothing written: the caller uses RQ's own path,
# which enqueues them), -1 its hash vanished while it ran, false when nothing to finish.
STEP_LUA = (
    METRICS_FUNCTION
    + f"""
local function append_event(job_id, payload, ttl, event, at)
  jobsvc_metrics(event, job_id, at)  -- webapp.metrics: counters, live-job index, durations
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[8], '*', 'job_id', job_id, 'data', payload)
  local job_stream = '{JOB_STREAM_PREFIX}' .. job_id
  redis.call('XADD', job_stream, 'MAXLEN', '~', ARGV[#ARGV], id, 'data', payload)
  redis.call('EXPIRE', job_stream, ttl)
  redis.call('PUBLISH', ARGV[7], '{{"id":"' .. id .. '",' .. string.sub(payload, 2))
end

local function finish()
  local job_id, origin, execution_id = ARGV[12], ARGV[13], ARGV[14]
  local job_key = '{JOB_PREFIX}' .. job_id
  local dependents = '{DEPENDENTS_KEY[0]}' .. job_id .. '{DEPENDENTS_KEY[1]}'
  if redis.call('SCARD', dependents) > 0 then return 0 end
  local composite = job_id .. ':' .. execution_id
  -- a retry after a lost reply: the first call did it all
  if redis.call('EXISTS', '{EXECUTION_PREFIX}' .. composite) == 0
    and redis.call('HGET', job_key, 'status') == 'finished' then return 1 end
  redis.call('DEL', '{EXECUTION_PREFIX}' .. composite)
  redis.call('ZREM', '{STARTED_PREFIX}' .. origin, composite)
  redis.call('ZREM', '{EXECUTIONS_PREFIX}' .. job_id, execution_id)
  redis.call('SREM', KEYS[3], composite)
  if redis.call('EXISTS', KEYS[2]) == 1 then  -- never recreate an expired worker hash in part
    redis.call('HINCRBY', KEYS[2], 'successful_job_count', 1)
    redis.call('HINCRBYFLOAT', KEYS[2], 'total_working_time', ARGV[20])
    redis.call('HSET', KEYS[2], 'state', 'idle')
  end
  if redis.call('EXISTS', job_key) == 0 then return -1 end
  local ttl = tonumber(ARGV[16])
  redis.call('HSET', job_key, 'status', 'finished', 'ended_at', ARGV[15], 'last_heartbeat', ARGV[15])
  local result_key = '{RESULT_PREFIX}' .. job_id
  local result = {{'type', '1', 'worker_name', ARGV[2]}}
  if ARGV[18] ~= '' then table.insert(result, 'return_value'); table.insert(result, ARGV[18]) end
  table.insert(result, 'execution_id'); table.insert(result, execution_id)
  table.insert(result, 'execution_started_at'); table.insert(result, ARGV[19])
  table.insert(result, 'execution_ended_at'); table.insert(result, ARGV[17])
  redis.call('XADD', result_key, 'MAXLEN', '~', 10, '*', unpack(result))
  if ttl == -1 then
    redis.call('PERSIST', result_key)
    redis.call('ZADD', '{FINISHED_PREFIX}' .. origin, '+inf', job_id)
  else
    redis.call('EXPIRE', result_key, ttl)
    redis.call('ZADD', '{FINISHED_PREFIX}' .. origin, math.floor(tonumber(ARGV[17])) + ttl, job_id)
    redis.call('EXPIRE', job_key, ttl)
    redis.call('EXPIRE', dependents, ttl)
    redis.call('EXPIRE', '{DEPENDENCIES_KEY[0]}' .. job_id .. '{DEPENDENCIES_KEY[1]}', ttl)
  end
  append_event(job_id, ARGV[22], ARGV[21], 'finished', tonumber(ARGV[17]))
  return 1
end

local function claim()
  local n = tonumber(ARGV[1])
  local worker_name, now_text, now_ts, execution_id = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
  for i = 1, n do
    local queue_key, wake = KEYS[3 + i], KEYS[3 + n + i]
    local job_id = redis.call('LPOP', queue_key)
    while job_id do
      local job_key = '{JOB_PREFIX}' .. job_id
      local fields = redis.call('HMGET', job_key, 'origin', 'timeout', 'meta', 'description')
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
        redis.call('SADD', KEYS[3], composite)
        redis.call('EXPIRE', KEYS[3], ttl + 60)
        if redis.call('EXISTS', KEYS[2]) == 1 then
          redis.call('HSET', KEYS[2], 'state', 'busy', 'last_heartbeat', now_text)
          if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
        end
        redis.call('HSET', job_key, 'status', 'started', 'started_at', now_text, 'last_heartbeat', now_text,
          'worker_name', worker_name)
        redis.call('PERSIST', job_key)
        -- wake tokens: at most one per queued job, at least one while jobs remain
        local remaining = redis.call('LLEN', queue_key)
        if remaining == 0 then
          redis.call('DEL', wake)
        elseif redis.call('LLEN', wake) == 0 then
          redis.call('RPUSH', wake, '1')
        else
          redis.call('LTRIM', wake, 0, remaining - 1)
        end
        local name = nil
        if fields[3] then
          local ok, meta = pcall(cjson.decode, fields[3])
          if ok and type(meta) == 'table' and type(meta['name']) == 'string' then name = meta['name'] end
        end
        if not name and fields[4] then  -- enqueued by plain RQ code: name it from the catalog
          local names = cjson.decode([==[__NAMES_JSON__]==])  -- by import path
          name = names[string.match(fields[4], '^([^(]*)')]  -- RQ's description: "<path>(<args>)"
        end
        local payload = '{{"event":"started","job_id":' .. cjson.encode(job_id) .. ',"name":'
          .. (name and cjson.encode(name) or 'null') .. ',"queue":' .. cjson.encode(origin)
          .. ',"status":"started","at":' .. cjson.encode(ARGV[10]) .. ',"worker":' .. cjson.encode(worker_name) .. '}}'
        append_event(job_id, payload, ARGV[9], 'started', now_ts)
        return {{i, job_id, redis.call('HGETALL', job_key)}}
      end
      -- the job hash is gone (deleted or expired): skip the id, as RQ's dequeue does
      job_id = redis.call('LPOP', queue_key)
    end
  end
  for i = 1, n do redis.call('DEL', KEYS[3 + n + i]) end
  return nil
end

local finished = false
if ARGV[12] ~= '' then finished = finish() end
if ARGV[11] == '1' then
  local claimed = claim()
  if claimed then return {{finished, claimed[1], claimed[2], claimed[3]}} end
end
return {{finished}}
"""
)


def step_lua(names_by_path: dict[str, str]) -> str:
    """STEP for one catalog: event names of jobs enqueued by plain RQ code come from it."""
    names = json.dumps(names_by_path or {}, separators=(",", ":"))
    if "]==]" in names:
        raise ValueError("a job name or path contains ']==]'")
    # cjson decodes {} as an empty table either way; an empty catalog stays an object
    return STEP_LUA.replace("__NAMES_JSON__", names)
