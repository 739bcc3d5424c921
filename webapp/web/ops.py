"""Prometheus metrics at `GET /metrics`, computed from Redis at scrape time.

Nothing is counted in process memory: gunicorn runs several web processes and workers run
on other machines, so every number lives in Redis and any web process can answer a scrape.

- Counters of lifecycle events are kept by the event script (`webapp.events`): the
  `METRICS_LUA` lines below run in the same script call as the event write, so a counter
  never disagrees with the event log.
- Job durations go to fixed histogram buckets in a Redis hash (run start kept per job).
- Recovery outcomes (`webapp.recovery`) are counted in their own hash.
- Queue depths and live workers are read from RQ's own keys at scrape time.

Keys: `jobsvc:metrics:events`, `jobsvc:metrics:duration`, `jobsvc:metrics:recovery`,
`jobsvc:run-started` (job id -> start time), `jobsvc:live` (live-job index, see recovery).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

EVENTS_KEY = "jobsvc:metrics:events"
DURATION_KEY = "jobsvc:metrics:duration"
RECOVERY_KEY = "jobsvc:metrics:recovery"
RUN_STARTED_KEY = "jobsvc:run-started"
LIVE_INDEX_KEY = "jobsvc:live"

DURATION_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "300")

# A Lua function every script that writes events calls with the event's name, job id and the
# writer's clock: the event script (webapp.events) and the fast worker's STEP (webapp.fastpath).
# `jobsvc:live` holds every job that is queued or running (scored by when it was queued): the
# reconciler's index, so it never scans the keyspace.
METRICS_FUNCTION = """
local function jobsvc_metrics(event, job_id, at)
local ends = {{finished = true, failed = true, stopped = true, canceled = true}}
if event then
  redis.call('HINCRBY', '{events}', event, 1)
  if event == 'queued' or event == 'retrying' then
    redis.call('ZADD', '{live}', at, job_id)
  elseif ends[event] then
    redis.call('ZREM', '{live}', job_id)
  end
  if event == 'started' then
    redis.call('HSET', '{started}', job_id, tostring(at))
  elseif ends[event] or event == 'retrying' or event == 'abandoned' then
    local began = redis.call('HGET', '{started}', job_id)
    if began then
      redis.call('HDEL', '{started}', job_id)
      if event ~= 'abandoned' then
        local took = at - tonumber(began)
        local field = '+Inf'
        for _, bound in ipairs({{{buckets}}}) do
          if took <= tonumber(bound) then field = bound break end
        end
        redis.call('HINCRBY', '{duration}', field, 1)
        redis.call('HINCRBYFLOAT', '{duration}', 'sum', took)
      end
    end
  end
end
end
""".format(
    events=EVENTS_KEY,
    live=LIVE_INDEX_KEY,
    started=RUN_STARTED_KEY,
    duration=DURATION_KEY,
    buckets=", ".join(f"'{bound}'" for bound in DURATION_BUCKETS),
)

# The event script's call (webapp.events): ARGV[7] event name, ARGV[4] job id, ARGV[8] clock.
METRICS_LUA = METRICS_FUNCTION + "jobsvc_metrics(ARGV[7], ARGV[4], tonumber(ARGV[8]))\n"

QUEUE_STATES = ("queued", "started", "scheduled", "deferred", "finished", "failed")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCollector:
    """A prometheus_client collector that reads every sample from Redis when scraped."""

    def __init__(self, connection: Redis, queue_names: list[str]):
        self.connection = connection
        self.queues = [Queue(name, connection=connection) for name in queue_names]

    def _read(self):
        with self.connection.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                pipe.llen(queue.key)
                pipe.zcard(queue.started_job_registry.key)
                pipe.zcard(queue.scheduled_job_registry.key)
                pipe.zcard(queue.deferred_job_registry.key)
                pipe.zcard(queue.finished_job_registry.key)
                pipe.zcard(queue.failed_job_registry.key)
            pipe.hgetall(EVENTS_KEY)
            pipe.hgetall(DURATION_KEY)
            pipe.hgetall(RECOVERY_KEY)
            pipe.smembers("rq:workers")
            replies = pipe.execute()
        depths = replies[: 6 * len(self.queues)]
        events, durations, recovery, worker_keys = replies[6 * len(self.queues) :]
        worker_keys = sorted(_text(key) for key in worker_keys)
        with self.connection.pipeline(transaction=False) as pipe:
            for key in worker_keys:
                pipe.exists(key)
            alive = sum(pipe.execute()) if worker_keys else 0
        return depths, events, durations, recovery, alive

    def collect(self):
        up = GaugeMetricFamily("jobsvc_redis_up", "1 when Redis answered this scrape, 0 when it did not.")
        try:
            depths, events, durations, recovery, alive = self._read()
        except RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        depth = GaugeMetricFamily("jobsvc_queue_jobs", "Jobs per queue and state.", labels=["queue", "state"])
        for index, queue in enumerate(self.queues):
            for offset, state in enumerate(QUEUE_STATES):
                depth.add_metric([queue.name, state], depths[6 * index + offset])
        yield depth

        counted = {_text(name): int(value) for name, value in events.items()}
        jobs = CounterMetricFamily("jobsvc_job_events", "Job lifecycle events recorded.", labels=["event"])
        for name in ("queued", "started", "finished", "failed", "retrying", "abandoned", "stopped"):
            jobs.add_metric([name], counted.get(name, 0))
        yield jobs

        buckets = {_text(name): value for name, value in durations.items()}
        cumulative, running = [], 0
        for bound in (*DURATION_BUCKETS, "+Inf"):
            running += int(buckets.get(bound, 0))
            cumulative.append((bound, running))
        histogram = HistogramMetricFamily("jobsvc_job_duration_seconds", "Time from a job's start to its end.")
        histogram.add_metric([], cumulative, sum_value=float(buckets.get("sum", 0) or 0))
        yield histogram

        workers = GaugeMetricFamily("jobsvc_workers_alive", "Workers whose RQ registration has not expired.")
        workers.add_metric([], alive)
        yield workers

        recovered = CounterMetricFamily(
            "jobsvc_recovered_jobs", "Jobs recovered from dead or stopped workers, by outcome.", labels=["outcome"]
        )
        outcomes = {_text(name): int(value) for name, value in recovery.items()}
        for outcome in ("retried", "failed", "handed_back", "requeued_unstarted", "orphan_requeued"):
            recovered.add_metric([outcome], outcomes.get(outcome, 0))
        yield recovered


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(current_app.extensions["redis"], current_app.config["QUEUES"]))
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8")


def init_app(app) -> None:
    app.register_blueprint(bp)
