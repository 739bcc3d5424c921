"""Operations endpoints: `/healthz` for load balancers and `/metrics` for Prometheus.

Both read Redis through the app's client, so a frozen or unreachable Redis makes `/healthz`
answer 503 within REDIS_SOCKET_TIMEOUT, as does one that answers but refuses writes (full, or
unable to save to disk), for then no job can be submitted. `/metrics` is computed from Redis at scrape time
(webapp/store/metrics.py), so any web process answers for the whole service.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from redis import Redis
from redis.exceptions import OutOfMemoryError, RedisError

from webapp.infra.redis import WritesRefusedError, unavailable_reason
from webapp.store import metrics
from webapp.store.health import probe_writes
from webapp.web.auth import public
from webapp.web.extensions import get_redis

# Open to load balancers and Prometheus, keys or not (keep /metrics on a private network).
bp = public(Blueprint("ops", __name__))


@bp.get("/healthz")
def healthz():
    """200 when Redis takes writes; 503 when it does not answer, is full or cannot save."""
    try:
        probe_writes(get_redis())
    except RedisError as exc:
        state = {OutOfMemoryError: "full", WritesRefusedError: "cannot_save"}.get(type(exc), "unreachable")
        message = unavailable_reason(exc) if state != "unreachable" else str(exc)
        response = jsonify({"status": "failing", "redis": state, "message": message})
        response.status_code = 503
        response.headers["Retry-After"] = "1"
        return response
    return jsonify({"status": "ok", "redis": "ok"})


class RedisCollector:
    """A prometheus_client collector that reads every sample from Redis when scraped."""

    def __init__(self, connection: Redis, queue_names: list[str]):
        self.connection = connection
        self.queue_names = queue_names

    def collect(self):
        up = GaugeMetricFamily("jobsvc_redis_up", "1 when Redis answered this scrape, 0 when it did not.")
        try:
            snapshot = metrics.read(self.connection, self.queue_names)
        except RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        depth = GaugeMetricFamily("jobsvc_queue_jobs", "Jobs per queue and state.", labels=["queue", "state"])
        for queue, counts in snapshot.depths.items():
            for state, value in counts.items():
                depth.add_metric([queue, state], value)
        yield depth

        queue_depth = GaugeMetricFamily("jobsvc_queue_depth", "Jobs waiting in each queue.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "jobsvc_queue_oldest_age_seconds",
            "Seconds the job at the head of each queue (the next to run) has waited; 0 when the queue is empty.",
            labels=["queue"],
        )
        paused = GaugeMetricFamily("jobsvc_queue_paused", "1 while a queue is paused, else 0.", labels=["queue"])
        for queue, counts in snapshot.depths.items():
            queue_depth.add_metric([queue], counts["queued"])
            if queue in snapshot.oldest_ages:
                oldest.add_metric([queue], snapshot.oldest_ages[queue])
            paused.add_metric([queue], 1 if queue in snapshot.paused else 0)
        yield from (queue_depth, oldest, paused)

        jobs = CounterMetricFamily("jobsvc_job_events", "Job lifecycle events recorded.", labels=["event"])
        for name, value in snapshot.events.items():
            jobs.add_metric([name], value)
        yield jobs

        histogram = HistogramMetricFamily("jobsvc_job_duration_seconds", "Time from a job's start to its end.")
        histogram.add_metric([], snapshot.duration_buckets, sum_value=snapshot.duration_sum)
        yield histogram

        workers = GaugeMetricFamily("jobsvc_workers_alive", "Workers whose RQ registration has not expired.")
        workers.add_metric([], snapshot.workers_alive)
        yield workers

        recovered = CounterMetricFamily(
            "jobsvc_recovered_jobs", "Jobs recovered from dead or stopped workers, by outcome.", labels=["outcome"]
        )
        for outcome, value in snapshot.recovered.items():
            recovered.add_metric([outcome], value)
        yield recovered
        yield from schedule_metrics(snapshot.schedules)


def schedule_metrics(schedules: dict[str, dict[str, float]]):
    """Per periodic schedule: runs, skips by reason, and the lag from due time to enqueue."""
    runs = CounterMetricFamily(
        "jobsvc_schedule_runs",
        "Runs a schedule enqueued, by kind (tick, catch_up, manual).",
        labels=["schedule", "kind"],
    )
    skips = CounterMetricFamily(
        "jobsvc_schedule_skips", "Ticks skipped, by reason (overlap, misfire, queue_full, invalid_job).",
        labels=["schedule", "reason"],
    )  # fmt: skip
    lag = SummaryMetricFamily(
        "jobsvc_schedule_lag_seconds", "Time from a tick's due time to its job's enqueue.", labels=["schedule"]
    )
    last = GaugeMetricFamily("jobsvc_schedule_last_lag_seconds", "The latest tick's lag.", labels=["schedule"])
    for name, counters in sorted(schedules.items()):
        for counter, value in counters.items():
            if counter.startswith("runs:"):
                runs.add_metric([name, counter.removeprefix("runs:")], value)
            elif counter.startswith("skipped:"):
                skips.add_metric([name, counter.removeprefix("skipped:")], value)
        lag.add_metric([name], count_value=counters.get("lag_count", 0), sum_value=counters.get("lag_sum", 0.0))
        if "last_lag" in counters:
            last.add_metric([name], counters["last_lag"])
    yield from (runs, skips, lag, last)


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(get_redis(), current_app.config["QUEUES"]))
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8")
