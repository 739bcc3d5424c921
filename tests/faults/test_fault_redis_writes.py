"""A Redis that refuses writes and still answers reads: full (maxmemory reached under
`noeviction`, the policy RQ needs: writes that would add data are refused), or unable to save to
disk (MISCONF: every write is refused). The API says so with a 503 and writes nothing; a job
running meanwhile keeps its outcome and is not run again; the worker processes neither die nor
restart in a loop (one started meanwhile waits); all resumes once Redis takes writes again."""

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

from jobsvc_client import Client, RedisDiskError, RedisFull  # noqa: E402


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
            health = httpx.get(f"{base}/healthz", timeout=5)  # a PING would answer: writes are probed
            assert health.status_code == 503 and health.json()["redis"] == "full", health.text

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
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
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


def break_saving(connection) -> Path:
    """Redis can no longer save to disk: the snapshot's file name is taken by a directory (the
    rename onto it fails, as a write to a full disk would), with a save point set, so it refuses
    every write (MISCONF). Returns that directory."""
    blocker = Path(connection.config_get("dir")["dir"]) / connection.config_get("dbfilename")["dbfilename"]
    connection.config_set("save", "3600 1")
    blocker.mkdir()
    connection.bgsave()
    wait_until(lambda: connection.info("persistence")["rdb_last_bgsave_status"] == "err", 10, message="save failed")
    return blocker


def mend_saving(connection, blocker: Path) -> None:
    blocker.rmdir()
    wait_until(lambda: connection.info("persistence")["rdb_bgsave_in_progress"] == 0, 10, message="no save running")
    connection.bgsave()
    wait_until(lambda: connection.info("persistence")["rdb_last_bgsave_status"] == "ok", 10, message="saved")


def test_a_redis_that_cannot_save_answers_503_and_the_job_ending_meanwhile_is_recorded_after(redis_server):
    connection = redis_server.client()
    web, base = start_web(redis_server.url)
    worker = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1"))
    try:
        wait_until(lambda: len(children(connection)) == 1, 20, message="worker registered")
        [pid] = children(connection).values()
        job_id = enqueue(connection, "jobs.faults.reporting_sleep", 1.0)
        wait_until(lambda: runs(connection, job_id) == 1, 20, message="the job started")
        blocker = break_saving(connection)
        broken_at = time.monotonic()
        try:
            posted = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [1, 2]}, timeout=5)
            assert posted.status_code == 503, posted.text
            assert posted.json()["error"]["code"] == "redis_disk_error"
            assert posted.headers["Retry-After"] == "5"
            with Client(base) as client, pytest.raises(RedisDiskError):
                client.submit("add", 1, 2)
            read = httpx.get(f"{base}/api/jobs/{job_id}", timeout=5)  # reads still work
            assert read.status_code == 200 and read.json()["status"] == "started"
            health = httpx.get(f"{base}/healthz", timeout=5)
            assert health.status_code == 503 and health.json()["redis"] == "cannot_save", health.text
            # every write is refused, the job's end too: it waits in the worker, which lives on
            time.sleep(max(0.0, 6.0 - (time.monotonic() - broken_at)))
            assert connection.hget(keys.job(job_id), "status") == b"started"
            assert pid_alive(pid) and "died" not in worker.output(), worker.output()
            assert re.search(r"Redis cannot save to disk \(MISCONF\)", worker.output()), worker.output()
        finally:
            mend_saving(connection, blocker)
        mended_at = time.monotonic()

        assert wait_status(connection, job_id, timeout=40) == "finished", worker.output()
        recorded_after = time.monotonic() - mended_at
        assert runs(connection, job_id) == 1, worker.output()
        assert [kind for kind, _ in attempts(connection, job_id)] == ["SUCCESSFUL"]
        posted = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [1, 2]}, timeout=5)
        assert posted.status_code == 202, posted.text
        assert wait_status(connection, posted.json()["id"], timeout=20) == "finished"
        time.sleep(4.5)  # longer than ABANDON_AFTER: the reaper must not take the worker for dead
        assert runs(connection, job_id) == 1 and pid in children(connection).values()
        report("redis_cannot_save", runs=1, lost=0, duplicated=0, worker_restarts=0,
               outcome_recorded_seconds_after_mended=round(recorded_after, 2))  # fmt: skip
    finally:
        worker.stop()
        web.stop()


def test_a_worker_stopped_while_redis_is_full_stops_cleanly(redis_server):
    """Its death record is refused: a warning, not a traceback, and the stop goes on."""
    connection = redis_server.client()
    worker = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1"))
    wait_until(lambda: len(children(connection)) == 1, 20, message="worker registered")
    fill(connection)
    try:
        stopped_at = time.monotonic()
        assert worker.stop() == 0, worker.output()
        assert time.monotonic() - stopped_at < 10
        output = worker.output()
        assert "could not record its stop: Redis is full" in output and "Traceback" not in output, output
        assert "died" not in output, output
    finally:
        free(connection)
