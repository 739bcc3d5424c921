"""Timeouts: a job past its timeout fails with a timeout reason and the worker goes on; a
job that ignores the timeout signal (stuck in C) is killed and its worker replaced."""

from __future__ import annotations

import time

import pytest

from tests.faults.faultkit import attempts, enqueue, fault_env, fetch, report, runs, wait_status, wait_until
from tests.faults.faultkit import worker_children as children
from tests.servers import start_worker


@pytest.fixture
def worker(redis_server, redis_conn):
    process = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1", JOB_KILL_GRACE="1"))
    wait_until(lambda: len(children(redis_conn)) == 1, 20, message="worker registered")
    yield process
    process.stop()


def test_a_job_past_its_timeout_fails_with_the_reason_and_the_worker_goes_on(redis_conn, worker):
    job_id = enqueue(redis_conn, "jobs.faults.record", 30, retries=0, timeout=1)
    before = children(redis_conn)
    assert wait_status(redis_conn, job_id, timeout=20) == "failed"
    error = fetch(redis_conn, job_id).meta["error"]
    assert error["type"] == "JobTimeoutException" and "timeout" in error["message"].lower()
    assert wait_status(redis_conn, enqueue(redis_conn, "jobs.faults.record")) == "finished"
    assert children(redis_conn) == before  # same worker process: SIGALRM stopped the job alone
    report("job_timeout_sigalrm", runs=1, jobs=1, lost=0, duplicated=0, timeout=1)


def test_a_job_stuck_in_c_is_killed_and_retried_then_failed(redis_conn, worker):
    job_id = enqueue(redis_conn, "jobs.faults.stuck_in_c", 600, retries=1, timeout=1)
    began = time.monotonic()
    assert wait_status(redis_conn, job_id, timeout=40) == "failed"
    took = time.monotonic() - began
    assert runs(redis_conn, job_id) == 2  # killed, retried once, killed again
    history = attempts(redis_conn, job_id)
    assert [kind for kind, _ in history] == ["RETRIED", "FAILED"]
    assert all("exceeded its timeout of 1 s and did not stop" in text for _, text in history)
    assert fetch(redis_conn, job_id).meta["error"]["type"] == "JobTimeoutException"
    follow_up = enqueue(redis_conn, "jobs.faults.record")
    assert wait_status(redis_conn, follow_up, timeout=20) == "finished"  # a replacement worker
    report("job_stuck_in_c", runs=1, jobs=1, lost=0, duplicated=1, timeout=1, kill_grace=1,
           seconds_to_final_failure=round(took, 1))  # fmt: skip
