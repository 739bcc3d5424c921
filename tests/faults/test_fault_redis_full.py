"""A full Redis: maxmemory reached under `noeviction` (the policy RQ needs), so it refuses every
write that would add data and still answers reads. The API says so with a 503 and writes
nothing; a job running meanwhile keeps its outcome and is not run again; the worker processes
neither die nor restart in a loop (one started meanwhile waits); all resumes once memory is freed."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.faultkit import attempts, enqueue, fault_env, pid_alive, report, runs, wait_status, wait_until
from tests.faults.faultkit import worker_children as children
from tests.servers import start_web, start_worker
from webapp.store import keys

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from jobsvc_client import Client, RedisFull  # noqa: E402


def fill(connection) -> None:
    """Redis is now full: a limit below what it holds refuses any write that adds data."""
    connection.config_set("maxmemory", 1)


def free(connection) -> None:
    connection.config_set("maxmemory", 0)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_full_redis_answers_503_keeps_the_running_job_and_workers_wait(redis_server, threads):
    connection = redis_server.client()
    web, base = start_web(redis_server.url)
    worker = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1", WORKER_THREADS=threads))
    late = None
    try:
        wait_until(lambda: len(children(connection)) == 1, 20, message="worker registered")
        [pid] = children(connection).values()
        job_id = enqueue(connection, "jobs.faults.reporting_sleep", 2.0)
        wait_until(lambda: runs(connection, job_id) == 1, 20, message="the job started")
        indexed = connection.zcard(keys.INDEX)
        fill(connection)
        filled_at = time.monotonic()
        try:
            posted = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [1, 2]}, timeout=5)
            assert posted.status_code == 503, posted.text
            assert posted.json()["error"]["code"] == "redis_full"
            assert "maxmemory" in posted.json()["error"]["message"]
            assert posted.headers["Retry-After"] == "5"
            with Client(base) as client, pytest.raises(RedisFull) as refused:  # the client library's name for it
                client.submit("add", 1, 2)
            assert refused.value.retry_after == 5 and refused.value.status == 503
            assert connection.llen(keys.queue("default")) == 0 and connection.zcard(keys.INDEX) == indexed
            read = httpx.get(f"{base}/api/jobs/{job_id}", timeout=5)  # reads still work
            assert read.status_code == 200 and read.json()["status"] == "started"

            # a worker process started now waits for writes instead of dying at its registration
            late = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1"))
            wait_until(lambda: "not starting work yet" in late.output(), 20, message="the late worker waits")

            # the job's end comes while Redis is full: recorded all the same (the finish's first
            # write only removes data, and a script that has begun writing is not stopped)
            assert wait_status(connection, job_id, timeout=20) == "finished", worker.output()
            # full for longer than the workers' periodic duties' interval (5 s): their heartbeat
            # is refused too
            time.sleep(max(0.0, 7.0 - (time.monotonic() - filled_at)))
            assert pid_alive(pid) and children(connection) == {next(iter(children(connection))): pid}
            assert "died" not in worker.output() and "died" not in late.output(), worker.output() + late.output()
            assert len(re.findall(r"progress reports: Redis is full", worker.output())) == 1, worker.output()
            assert len(re.findall(r"not starting work yet", late.output())) == 1, late.output()
            # the workers' own duties said it (once) and went on: neither died
            said = r"Worker \S+: (heartbeat and maintenance: )?Redis is full \(its maxmemory is reached\)"
            assert re.search(said, worker.output()), worker.output()
        finally:
            free(connection)
        freed_at = time.monotonic()

        assert runs(connection, job_id) == 1
        assert [kind for kind, _ in attempts(connection, job_id)] == ["SUCCESSFUL"]
        wait_until(lambda: len(children(connection)) == 2, 20, message="the late worker registered")
        posted = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [1, 2]}, timeout=5)
        assert posted.status_code == 202, posted.text
        follow_up = posted.json()["id"]
        assert wait_status(connection, follow_up, timeout=20) == "finished"
        resumed_after = time.monotonic() - freed_at
        assert pid in children(connection).values()
        report(f"redis_full_threads_{threads}", runs=1, lost=0, duplicated=0, worker_restarts=0,
               resumed_seconds_after_freed=round(resumed_after, 2))  # fmt: skip
    finally:
        if late is not None:
            late.stop()
        worker.stop()
        web.stop()
