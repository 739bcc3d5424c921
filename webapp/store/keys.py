"""Every Redis key the service reads or writes, named once.

RQ's keys are taken from RQ's own classes, so the service and RQ's workers, `Job.fetch` and
rq-dashboard always agree; tests/test_rq_compat.py pins the layout of the installed RQ, so an
RQ upgrade that moves a key fails there first. The service's own keys all start with
`jobsvc:`. A test fails if a key name is spelled anywhere else in `webapp/`
(tests/test_architecture.py); Lua scripts get the prefixes below through `LUA_NAMES`.
"""

from __future__ import annotations

from rq.defaults import RQ_KEY_PREFIX
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, ExecutionRegistry
from rq.job import Job
from rq.queue import Queue
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result
from rq.worker import Worker
from rq.worker_registration import REDIS_WORKER_KEYS, WORKERS_BY_QUEUE_KEY

# -- RQ's keys ------------------------------------------------------------------------------

JOB_PREFIX = Job.redis_job_namespace_prefix  # + job id: the job hash
RESULTS_PREFIX = Result.get_key("")  # + job id: the results stream
QUEUE_PREFIX = Queue.redis_queue_namespace_prefix  # + queue name: the queue list
QUEUES = Queue.redis_queues_keys  # the set of every queue's key
WORKERS = REDIS_WORKER_KEYS  # the set of every worker's key
WORKER_PREFIX = Worker.redis_worker_namespace_prefix  # + worker name: the worker hash
EXECUTION_PREFIX = f"{RQ_KEY_PREFIX}:execution:"  # + "<job id>:<execution id>": one execution
EXECUTIONS_PREFIX = ExecutionRegistry.key_template.format("")  # + job id: a job's executions

REGISTRIES = {
    "started": StartedJobRegistry,
    "scheduled": ScheduledJobRegistry,
    "deferred": DeferredJobRegistry,
    "finished": FinishedJobRegistry,
    "failed": FailedJobRegistry,
    "canceled": CanceledJobRegistry,
}


def job(job_id: str) -> str:
    return JOB_PREFIX + job_id


def results(job_id: str) -> str:
    return RESULTS_PREFIX + job_id


def dependents(job_id: str) -> str:
    return Job.dependents_key_for(job_id)


def dependencies(job_id: str) -> str:
    # As RQ 3 writes it (Job.dependencies_key), with a doubled colon: `rq:job::<id>:dependencies`.
    return f"{JOB_PREFIX}:{job_id}:dependencies"


def queue(name: str) -> str:
    return QUEUE_PREFIX + name


def registry(state: str, queue_name: str) -> str:
    """The registry of jobs in `state` (started, scheduled, deferred, finished, failed, canceled)."""
    return REGISTRIES[state].key_template.format(queue_name)


def execution(job_id: str, execution_id: str) -> str:
    return f"{EXECUTION_PREFIX}{job_id}:{execution_id}"


def executions(job_id: str) -> str:
    return EXECUTIONS_PREFIX + job_id


def worker(name: str) -> str:
    return WORKER_PREFIX + name


def worker_executions(name: str) -> str:
    return WORKER_EXECUTIONS_KEY_TEMPLATE.format(name)


def workers_by_queue(queue_name: str) -> str:
    return WORKERS_BY_QUEUE_KEY % queue_name


# -- the service's own keys ----------------------------------------------------------------

EVENTS_STREAM = "jobsvc:events"  # every job's events (a stream), trimmed to EVENTS_STREAM_MAXLEN
EVENTS_CHANNEL = "jobsvc:events"  # the pub/sub channel events are published on (EVENTS_CHANNEL)
JOB_EVENTS_PREFIX = "jobsvc:job-events:"  # + job id: one job's timeline (a stream)
WAKE_PREFIX = "jobsvc:wake:"  # + queue name: wake-up tokens for idle workers (a list)
PAUSED_QUEUES = "jobsvc:queues:paused"  # paused queue name -> {"at", "by"} as JSON (a hash; absent: none paused)
QUEUE_EVENTS_STREAM = "jobsvc:queue-events"  # operator events: queue.paused / queue.resumed, bulk.* (a stream)
QUEUE_EVENTS_SUFFIX = ":queues"  # the events channel + this: where operator (queue, bulk) events are published

INDEX = "jobsvc:index"  # every job by submission time (a sorted set)
INDEX_BY_QUEUE_PREFIX = "jobsvc:index:queue:"  # + queue name
INDEX_BY_NAME_PREFIX = "jobsvc:index:name:"  # + job name
INDEX_BY_OWNER_PREFIX = "jobsvc:index:owner:"  # + API key name
INDEX_SWEEP = "jobsvc:index:sweep"  # where the index sweep stopped, per index set (a hash)
INDEX_SWEEP_SIZES = "jobsvc:index:sweep-sizes"  # each index set's size after the last sweep (a hash)
INDEX_SETS = "jobsvc:index:sets"  # the names of the index sets the sweep visits, besides INDEX (a set)

METRICS_EVENTS = "jobsvc:metrics:events"  # event name -> count (a hash)
METRICS_DURATION = "jobsvc:metrics:duration"  # histogram bucket -> count, plus the sum
METRICS_RECOVERY = "jobsvc:metrics:recovery"  # recovery outcome -> count
# job id -> start time of its run, written by earlier versions (end events now carry the start);
# the reaper deletes what is left of it
RUN_STARTED_LEGACY = "jobsvc:run-started"
LIVE = "jobsvc:live"  # jobs queued or running, by when they were queued (a sorted set)

LIVENESS_PREFIX = "jobsvc:liveness:"  # + worker name: refreshed by its supervisor, expiring
WRITE_PROBE = "jobsvc:write-probe"  # never created: a worker's conditional SET of it asks whether Redis takes writes
SUPERVISED = "jobsvc:supervised"  # names of workers that have a supervisor (a set)
REAPER_LOCK = "jobsvc:reaper:lock"  # held by the one supervisor running a reaper pass
ORPHAN_MARK_PREFIX = "jobsvc:orphan-seen:"  # + job id: first sighting of a lost queued job

IDEMPOTENCY_PREFIX = "jobsvc:idempotency:"  # + hash of (API key name, Idempotency-Key)
RATE_PREFIX = "jobsvc:rate:"  # + hash of the client: its submission count this window

# Periodic schedules (webapp/store/schedules.py)
SCHEDULES = "jobsvc:schedules"  # every schedule's name (a set)
SCHEDULES_DUE = "jobsvc:schedules-due"  # active schedules by the time of their next run, in ms (a sorted set)
SCHEDULE_PREFIX = "jobsvc:schedule:"  # + name: definition and state (a hash)
SCHEDULE_RUNS_PREFIX = "jobsvc:schedule-runs:"  # + name: its latest runs and skips, newest first (a list)
SCHEDULE_EVENTS_STREAM = "jobsvc:schedule-events"  # every schedule's events (a stream)
SCHEDULE_EVENTS_SUFFIX = ":schedules"  # the events channel + this: where schedule events are published
INDEX_BY_SCHEDULE_PREFIX = "jobsvc:index:schedule:"  # + schedule name: its jobs (a listing index set)
METRICS_SCHEDULES = "jobsvc:metrics:schedules"  # "<schedule>\t<counter>" -> value (a hash)
SESSION_SECRET = "jobsvc:session:secret"  # signs web sign-in sessions when SECRET_KEY is unset
SESSION_ENDED_PREFIX = "jobsvc:session:ended:"  # + session id: signed out (expires with the session)
AUDIT = "jobsvc:audit"  # who changed what (a stream, trimmed by AUDIT_RETENTION and AUDIT_MAXLEN)
AUTH_FAILURES_PREFIX = "jobsvc:auth-failures:"  # + minute + client address: refused credentials (a counter)
AUDIT_REFUSALS_PREFIX = "jobsvc:audit:refusals:"  # + minute + caller: refusals recorded (a counter, 2 minutes)
STATS_PREFIX = "jobsvc:stats:"  # + hour (Unix time // 3600): per-minute counters and gauges (a hash)
# Concurrency and rate limits per key (webapp/store/limits.py, lua/lib/limits.lua)
LIMIT_RUNNING_PREFIX = "jobsvc:limit:running:"  # + limit key: its running jobs by lease expiry (a sorted set)
LIMIT_STARTS_PREFIX = "jobsvc:limit:starts:"  # + limit key: starts within the rate window (a sorted set)
LIMIT_PARKED_PREFIX = "jobsvc:limit:parked:"  # + limit key: job ids waiting for a slot, oldest first (a list)
LIMIT_KEYS = "jobsvc:limit:keys"  # active limit keys by last activity (a sorted set)
LIMIT_SPECS = "jobsvc:limit:specs"  # limit key -> its latest limit, "<concurrency> <rate> <per>" (a hash)
LIMIT_DUE = "jobsvc:limit:due"  # rate-parked limit keys by when their window next admits a job (a sorted set)
STATS_SAMPLED = "jobsvc:stats:sampled"  # claimed by the one process sampling the gauges this interval
WEBHOOK_PREFIX = "jobsvc:webhook:"  # + delivery id (the event's id): one delivery (a hash)
WEBHOOK_ATTEMPTS_SUFFIX = ":attempts"  # delivery key + this: its attempts, oldest first (a list)
WEBHOOK_DUE = "jobsvc:webhooks:due"  # target hosts by their earliest due delivery, in ms (a sorted set)
WEBHOOK_DUE_HOST_PREFIX = "jobsvc:webhooks:due:"  # + host: its delivery ids by due time, in ms (a sorted set)
WEBHOOK_WAKE = "jobsvc:webhooks:wake"  # tokens that wake an idle delivery thread (a list)
WEBHOOK_JOB_PREFIX = "jobsvc:webhooks:job:"  # + job id: the job's delivery ids, oldest first (a list)


def job_events(job_id: str) -> str:
    return JOB_EVENTS_PREFIX + job_id


def wake(queue_name: str) -> str:
    return WAKE_PREFIX + queue_name


def index_by_queue(queue_name: str) -> str:
    return INDEX_BY_QUEUE_PREFIX + queue_name


def index_by_name(job_name: str) -> str:
    return INDEX_BY_NAME_PREFIX + job_name


def index_by_owner(owner: str) -> str:
    return INDEX_BY_OWNER_PREFIX + owner


def index_by_schedule(schedule: str) -> str:
    return INDEX_BY_SCHEDULE_PREFIX + schedule


def schedule(name: str) -> str:
    return SCHEDULE_PREFIX + name


def schedule_runs(name: str) -> str:
    return SCHEDULE_RUNS_PREFIX + name


def schedule_events_channel(config) -> str:
    """Schedule events go on a channel of their own, beside the job events' channel."""
    return events_channel(config) + SCHEDULE_EVENTS_SUFFIX


def queue_events_channel(config) -> str:
    """Operator events (queue pauses, bulk progress) go on a channel of their own, beside the job events'."""
    return events_channel(config) + QUEUE_EVENTS_SUFFIX


def liveness(worker_name: str) -> str:
    return LIVENESS_PREFIX + worker_name


def orphan_mark(job_id: str) -> str:
    return ORPHAN_MARK_PREFIX + job_id


def session_ended(session_id: str) -> str:
    return SESSION_ENDED_PREFIX + session_id


def stats_hour(hour: int) -> str:
    return f"{STATS_PREFIX}{hour}"


def webhook(delivery_id: str) -> str:
    return WEBHOOK_PREFIX + delivery_id


def webhook_attempts(delivery_id: str) -> str:
    return WEBHOOK_PREFIX + delivery_id + WEBHOOK_ATTEMPTS_SUFFIX


def webhooks_of_job(job_id: str) -> str:
    return WEBHOOK_JOB_PREFIX + job_id


def events_channel(config) -> str:
    """The configured events channel, or the default one."""
    return config.get("EVENTS_CHANNEL") or EVENTS_CHANNEL


# The names a Lua script may use as `{{NAME}}` (webapp/store/scripts.py substitutes them).
LUA_NAMES = {
    "JOB_PREFIX": JOB_PREFIX,
    "RESULTS_PREFIX": RESULTS_PREFIX,
    "QUEUE_PREFIX": QUEUE_PREFIX,
    "QUEUES": QUEUES,
    "EXECUTION_PREFIX": EXECUTION_PREFIX,
    "EXECUTIONS_PREFIX": EXECUTIONS_PREFIX,
    "STARTED_PREFIX": registry("started", ""),
    "FINISHED_PREFIX": registry("finished", ""),
    "DEPENDENTS_SUFFIX": dependents("").removeprefix(JOB_PREFIX),
    "DEPENDENCIES_PREFIX": dependencies("").removesuffix(":dependencies"),
    "JOB_EVENTS_PREFIX": JOB_EVENTS_PREFIX,
    "WAKE_PREFIX": WAKE_PREFIX,
    "PAUSED_QUEUES": PAUSED_QUEUES,
    "METRICS_EVENTS": METRICS_EVENTS,
    "METRICS_DURATION": METRICS_DURATION,
    "LIVE": LIVE,
    "STATS_PREFIX": STATS_PREFIX,
    "WEBHOOK_PREFIX": WEBHOOK_PREFIX,
    "WEBHOOK_ATTEMPTS_SUFFIX": WEBHOOK_ATTEMPTS_SUFFIX,
    "WEBHOOK_DUE": WEBHOOK_DUE,
    "WEBHOOK_DUE_HOST_PREFIX": WEBHOOK_DUE_HOST_PREFIX,
    "WEBHOOK_WAKE": WEBHOOK_WAKE,
    "WEBHOOK_JOB_PREFIX": WEBHOOK_JOB_PREFIX,
    "DEFERRED_PREFIX": registry("deferred", ""),
    "LIMIT_RUNNING_PREFIX": LIMIT_RUNNING_PREFIX,
    "LIMIT_STARTS_PREFIX": LIMIT_STARTS_PREFIX,
    "LIMIT_PARKED_PREFIX": LIMIT_PARKED_PREFIX,
    "LIMIT_KEYS": LIMIT_KEYS,
    "LIMIT_SPECS": LIMIT_SPECS,
    "LIMIT_DUE": LIMIT_DUE,
}


def limit_running(limit_key: str) -> str:
    return LIMIT_RUNNING_PREFIX + limit_key


def limit_starts(limit_key: str) -> str:
    return LIMIT_STARTS_PREFIX + limit_key


def limit_parked(limit_key: str) -> str:
    return LIMIT_PARKED_PREFIX + limit_key
