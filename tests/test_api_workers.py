"""Job options that need a worker: scheduling, stop, dependencies, retry, through real worker.py."""

from __future__ import annotations

import json
import time

import pytest

from tests.servers import start_worker


@pytest.fixture
def worker(redis_server, redis_conn):
    process = start_worker(redis_server.url, "--processes", "1", SCHEDULER_INTERVAL="0.2")
    yield process
    process.stop()


def post(client, path, body=None):
    data = json.dumps(body) if body is not None else None
    return client.post(path, data=data, content_type="application/json")


def wait_status(client, job_id, wanted, timeout=20.0):
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        body = client.get(f"/api/jobs/{job_id}").get_json()
        if body["status"] in wanted:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}: {body}")


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def events_of(redis_conn, job_id):
    entries = redis_conn.xrange(f"jobsvc:job-events:{job_id}")
    return [json.loads(fields[b"data"])["event"] for _, fields in entries]


def test_enqueue_in_runs_about_a_second_later(client, worker, redis_conn):
    submitted = time.monotonic()
    response = post(client, "/api/jobs", {"name": "add", "args": [2, 3], "enqueue_in": 1})
    assert response.status_code == 202 and response.get_json()["status"] == "scheduled"
    job_id = response.get_json()["id"]
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "scheduled"
    assert redis_conn.zscore("rq:scheduled:default", job_id) is not None
    body = wait_status(client, job_id, ("finished", "failed"))
    started_after = time.monotonic() - submitted
    assert body["status"] == "finished" and body["result"] == 5
    assert started_after >= 1.0, "ran before its time"
    assert started_after < 10.0
    wait_for(lambda: events_of(redis_conn, job_id) == ["scheduled", "queued", "started", "finished"])


def test_delete_stops_a_running_job_and_the_worker_carries_on(client, worker, redis_conn):
    job_id = post(client, "/api/jobs", {"name": "sleep", "args": [30]}).get_json()["id"]
    wait_status(client, job_id, ("started",))
    response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 202
    body = wait_status(client, job_id, ("stopped", "failed", "finished"), timeout=10)
    assert body["status"] == "stopped"
    wait_for(lambda: "stopped" in events_of(redis_conn, job_id))  # published right after the status
    # Stopped, not failed: a second DELETE is a conflict naming the status.
    again = client.post(f"/api/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "stopped" in again.get_json()["error"]["message"]
    # The same worker process is still alive and runs the next job.
    next_id = post(client, "/api/jobs", {"name": "add", "args": [1, 1]}).get_json()["id"]
    assert wait_status(client, next_id, ("finished",))["result"] == 2
    assert worker.process.poll() is None
    # And a stopped job can be retried.
    assert post(client, f"/api/jobs/{job_id}/retry").status_code == 202
    # A stop that was asked for is one line in the worker's log, not an error with a traceback.
    output = worker.output()
    assert f"job {job_id} stopped on request" in output
    assert "JobStopped" not in output and "Traceback" not in output


def test_every_stop_reaches_the_same_worker_process_not_only_the_first(client, worker):
    # One worker process runs the three jobs one after the other; each stop must land (a stale
    # record of the first stopped job once made the process ignore every later stop request).
    for _ in range(3):
        job_id = post(client, "/api/jobs", {"name": "sleep", "args": [30]}).get_json()["id"]
        wait_status(client, job_id, ("started",))
        assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 202
        assert wait_status(client, job_id, ("stopped", "failed", "finished"), timeout=10)["status"] == "stopped"


def test_dependencies_wait_then_run_and_allow_failure(client, worker):
    first = post(client, "/api/jobs", {"name": "sleep", "args": [0.5]}).get_json()["id"]
    second = post(client, "/api/jobs", {"name": "add", "args": [1, 2], "depends_on": [first]})
    assert second.status_code == 202 and second.get_json()["status"] == "deferred"
    assert wait_status(client, second.get_json()["id"], ("finished",))["result"] == 3

    failing = post(client, "/api/jobs", {"name": "fail", "args": ["boom"]}).get_json()["id"]
    tolerant = post(
        client, "/api/jobs", {"name": "add", "args": [2, 2], "depends_on": {"ids": [failing], "allow_failure": True}}
    ).get_json()["id"]
    assert wait_status(client, failing, ("failed",))["error"]["message"] == "boom"
    assert wait_status(client, tolerant, ("finished",))["result"] == 4


def test_retry_requeues_a_failed_job_under_the_same_id(client, worker, redis_conn):
    job_id = post(client, "/api/jobs", {"name": "fail", "args": ["again"]}).get_json()["id"]
    wait_status(client, job_id, ("failed",))
    response = post(client, f"/api/jobs/{job_id}/retry")
    assert response.status_code == 202 and response.get_json()["id"] == job_id
    body = wait_status(client, job_id, ("failed",))
    assert body["error"]["message"] == "again"
    wait_for(lambda: events_of(redis_conn, job_id).count("failed") == 2)


def test_retry_option_with_intervals_retries_through_the_scheduler(client, worker, redis_conn):
    job_id = post(client, "/api/jobs", {"name": "fail", "retry": {"max": 1, "intervals": [1]}}).get_json()["id"]
    body = wait_status(client, job_id, ("failed",))
    assert body["status"] == "failed"
    wait_for(lambda: events_of(redis_conn, job_id).count("started") == 2)
