"""Real worker.py processes run jobs submitted through the API and report on them."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.servers import start_worker


def submit(client, name, *args, **kwargs):
    response = client.post("/api/jobs", json={"name": name, "args": list(args), "kwargs": kwargs})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def wait_for(client, job_id, statuses=("finished", "failed"), timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/jobs/{job_id}").get_json()
        if body["status"] in statuses:
            return body
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {body['status']} after {timeout} s")


@pytest.fixture
def worker(redis_server, redis_conn):
    process = start_worker(redis_server.url)
    yield process
    process.stop()


def test_add_finishes_with_its_result(client, worker):
    job_id = submit(client, "add", 2, 3)
    body = wait_for(client, job_id)
    assert body["status"] == "finished" and body["result"] == 5 and body["error"] is None
    assert body["started_at"] <= body["ended_at"]


def test_fail_ends_failed_with_its_message(client, worker):
    job_id = submit(client, "fail", "it went wrong")
    body = wait_for(client, job_id)
    assert body["status"] == "failed"
    assert body["error"] == {"type": "RuntimeError", "message": "it went wrong"}
    assert body["result"] is None


def test_sleep_reports_progress_between_start_and_done(client, worker):
    job_id = submit(client, "sleep", 1.0)
    seen = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = client.get(f"/api/jobs/{job_id}").get_json()
        if body["progress"]:
            seen.add(body["progress"]["percent"])
        if body["status"] == "finished":
            break
        time.sleep(0.05)
    assert body["status"] == "finished" and body["result"] == {"slept": 1.0}
    assert body["progress"]["percent"] == 100
    assert any(0 < percent < 100 for percent in seen), seen


def test_a_running_job_that_redis_lost_stays_gone_and_is_a_404(client, redis_conn, worker):
    """Redis restarted without its data (here: FLUSHALL) under a job that reports progress: its
    reports used to make the job's hash anew with only `meta` in it, a job without a status that
    every route answered with a 500 and whose event stream never ended."""
    job_id = submit(client, "sleep", 1.5)
    wait_for(client, job_id, statuses=("started",))
    redis_conn.flushall()
    deadline = time.monotonic() + 3.0  # the job ends within it: its last reports and its end
    while time.monotonic() < deadline:
        assert not redis_conn.exists(f"rq:job:{job_id}")
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        time.sleep(0.05)
    assert client.delete(f"/api/jobs/{job_id}").status_code == 404
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 404


def test_a_job_hash_without_its_call_is_no_job(client, redis_conn):
    """What a stray write leaves after Redis lost a job (RQ's own paths can write one field)."""
    job_id = "0123456789abcdef"
    redis_conn.hset(f"rq:job:{job_id}", mapping={"meta": "{}", "status": "failed"})
    assert client.get(f"/api/jobs/{job_id}").status_code == 404
    assert client.delete(f"/api/jobs/{job_id}").status_code == 404
    assert client.post(f"/api/jobs/{job_id}/retry", json={}).status_code == 404


def test_each_job_publishes_queued_started_finished(client, redis_conn, worker):
    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("jobsvc:events")
    pubsub.get_message(timeout=1)
    job_id = submit(client, "add", 1, 1)
    failing = submit(client, "fail", "no")
    events: dict[str, list[str]] = {job_id: [], failing: []}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (events[job_id][-1:] != ["finished"] or events[failing][-1:] != ["failed"]):
        message = pubsub.get_message(timeout=0.2)
        if message:
            event = json.loads(message["data"])
            assert {"id", "event", "job_id", "name", "queue", "status", "at"} <= set(event)
            events.setdefault(event["job_id"], []).append(event["event"])
    assert events[job_id] == ["queued", "started", "finished"]
    assert events[failing] == ["queued", "started", "failed"]
    pubsub.close()


def test_the_demo_job_logs_task_get(client, worker):
    job_id = submit(client, "task_get", 7)
    assert wait_for(client, job_id)["result"] == 7
    deadline = time.monotonic() + 5
    while "Task get 7" not in worker.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Task get 7" in worker.output()


def test_sigterm_lets_the_running_job_finish_then_exits_0(client, redis_server, redis_conn):
    process = start_worker(redis_server.url)
    try:
        job_id = submit(client, "sleep", 1.5)
        wait_for(client, job_id, statuses=("started",))
        process.signal(signal.SIGTERM)
        assert process.process.wait(15) == 0, process.output()
        body = client.get(f"/api/jobs/{job_id}").get_json()
        assert body["status"] == "finished", process.output()
    finally:
        process.stop()


def test_a_killed_worker_process_is_replaced(client, redis_server, redis_conn):
    process = start_worker(redis_server.url)
    try:
        assert wait_for(client, submit(client, "add", 1, 2))["result"] == 3
        (worker_key,) = redis_conn.smembers("rq:workers")
        child = int(redis_conn.hget(worker_key.decode(), "pid"))
        os.kill(child, signal.SIGKILL)
        time.sleep(0.5)
        assert process.process.poll() is None  # the supervisor carries on
        assert wait_for(client, submit(client, "add", 2, 2))["result"] == 4
    finally:
        process.stop()
