"""GET /metrics (Prometheus text, from Redis at scrape time) and job ids in worker logs."""

from __future__ import annotations

import json
import logging
import os
import signal
import time

from prometheus_client.parser import text_string_to_metric_families

from tests.faults.faultkit import enqueue, fault_env, fetch, status, wait_status, wait_until, worker_children
from tests.servers import start_worker
from webapp.infra.logs import JobContextFilter, JSONFormatter


def samples(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_queues_events_durations_workers_and_recoveries(client, redis_server, redis_conn):
    before = samples(client)
    assert before[("jobsvc_redis_up", ())] == 1
    assert before[("jobsvc_queue_jobs", (("queue", "default"), ("state", "queued")))] == 0
    worker = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="2"))
    try:
        wait_until(lambda: len(worker_children(redis_conn)) == 2, 20, message="workers")
        done = [client.post("/api/jobs", json={"name": "add", "args": [n, 1]}).get_json()["id"] for n in range(5)]
        failing = client.post("/api/jobs", json={"name": "fail"}).get_json()["id"]
        for job_id in [*done, failing]:
            wait_status(redis_conn, job_id)
        killed = enqueue(redis_conn, "jobs.faults.record", 30)
        wait_until(lambda: status(redis_conn, killed) == "started", 20)
        os.kill(worker_children(redis_conn)[fetch(redis_conn, killed).worker_name], signal.SIGKILL)
        wait_until(lambda: int(redis_conn.hget("jobsvc:metrics:recovery", "retried") or 0) == 1, 15)
        wait_until(lambda: samples(client)[("jobsvc_workers_alive", ())] == 2, 15, message="replacement counted")
        after = samples(client)
    finally:
        worker.stop()
    assert after[("jobsvc_job_events_total", (("event", "queued"),))] == 7
    assert after[("jobsvc_job_events_total", (("event", "finished"),))] == 5
    assert after[("jobsvc_job_events_total", (("event", "failed"),))] == 1
    assert after[("jobsvc_job_events_total", (("event", "abandoned"),))] == 1
    assert after[("jobsvc_job_events_total", (("event", "retrying"),))] == 1
    assert after[("jobsvc_recovered_jobs_total", (("outcome", "retried"),))] == 1
    assert after[("jobsvc_job_duration_seconds_count", ())] == 6  # the killed run is not timed
    assert after[("jobsvc_job_duration_seconds_bucket", (("le", "+Inf"),))] == 6
    assert after[("jobsvc_queue_jobs", (("queue", "default"), ("state", "finished")))] == 5
    assert after[("jobsvc_queue_jobs", (("queue", "default"), ("state", "failed")))] == 1
    assert after[("jobsvc_workers_alive", ())] == 2


def test_the_duration_histogram_times_each_run_from_its_start(client, redis_server, redis_conn):
    """The end of a run carries its start (STEP's finish, the worker's end events): no start is
    stored per job, and the histogram's sum is the runs' time, kept in whole microseconds."""
    worker = start_worker(redis_server.url, **fault_env())
    try:
        ids = [client.post("/api/jobs", json={"name": "sleep", "args": [0.3]}).get_json()["id"] for _ in range(2)]
        for job_id in ids:
            wait_status(redis_conn, job_id)
        after = samples(client)
    finally:
        worker.stop()
    assert after[("jobsvc_job_duration_seconds_count", ())] == 2
    assert 0.6 <= after[("jobsvc_job_duration_seconds_sum", ())] < 2.0
    assert after[("jobsvc_job_duration_seconds_bucket", (("le", "0.1"),))] == 0
    stored = redis_conn.hgetall("jobsvc:metrics:duration")
    assert b"sum" not in stored and int(stored[b"sum_us"]) >= 600_000
    assert not redis_conn.exists("jobsvc:run-started")  # no per-job start time is stored


def test_metrics_say_redis_is_down_instead_of_failing(app, redis_server):
    app.extensions["redis"].connection_pool.reset()
    app.extensions["redis"].connection_pool.connection_kwargs["port"] = redis_server.port + 1 or 1
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert "jobsvc_redis_up 0.0" in response.get_data(as_text=True)


def test_worker_log_lines_carry_the_job_id(redis_server, redis_conn, client):
    worker = start_worker(redis_server.url, LOG_FORMAT="json", **fault_env(WORKER_PROCESSES="1"))
    try:
        job_id = client.post("/api/jobs", json={"name": "task_get", "args": [42]}).get_json()["id"]
        wait_status(redis_conn, job_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "Task get 42" not in worker.output():
            time.sleep(0.05)
        lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    finally:
        worker.stop()
    (line,) = [line for line in lines if line["message"] == "Task get 42"]
    assert line["job_id"] == job_id and line["logger"] == "jobs.demo" and line["worker"].endswith("-1")


def test_json_formatter_outside_a_job_says_no_job():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    JobContextFilter("w1").filter(record)
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "hello there" and line["job_id"] == "-" and line["worker"] == "w1"
