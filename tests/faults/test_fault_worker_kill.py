"""A worker killed mid-job: its job is re-run (retry left) or failed with the reason, fast."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.faultkit import (
    abandon_after,
    attempts,
    enqueue,
    events,
    fault_env,
    fetch,
    pid_alive,
    report,
    runs,
    status,
    wait_status,
    wait_until,
    worker_children,
)
from tests.servers import start_worker


@pytest.fixture
def worker(redis_server, redis_conn):
    process = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="2"))
    wait_until(lambda: len(worker_children(redis_conn)) == 2, 20, message="two workers registered")
    yield process
    process.stop()


def running_child(connection, job_id) -> tuple[str, int]:
    """The worker process running the job, once the job's body has begun (its run counted): the
    status reads `started` from the claim on, a moment before the body runs, and a kill in that
    moment finds no run to count."""
    name = wait_until(lambda: status(connection, job_id) == "started" and fetch(connection, job_id).worker_name, 20)
    wait_until(lambda: runs(connection, job_id) >= 1, 20, message="the job's body began")
    return name, worker_children(connection)[name]


def test_sigkill_mid_job_reruns_the_job_and_the_attempts_say_why(redis_conn, worker):
    job_id = enqueue(redis_conn, "jobs.faults.record", 1.5)
    name, pid = running_child(redis_conn, job_id)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: runs(redis_conn, job_id) == 2, 15, message="second run")
    recovered_after = time.monotonic() - killed_at
    assert wait_status(redis_conn, job_id) == "finished"
    history = attempts(redis_conn, job_id)
    assert [kind for kind, _ in history] == ["RETRIED", "SUCCESSFUL"]
    assert f"worker {name} died (killed by signal 9, SIGKILL)" in history[0][1]
    names = [event["event"] for event in events(redis_conn, job_id)]
    assert names == ["queued", "started", "abandoned", "retrying", "started", "finished"]
    assert fetch(redis_conn, job_id).latest_result().return_value == 2
    report("worker_sigkill", runs=1, jobs=1, lost=0, duplicated=1, recovery_seconds=round(recovered_after, 2))
    assert recovered_after < 15


def test_sigkill_without_retries_fails_the_job_with_the_signal(redis_conn, client, worker):
    job_id = enqueue(redis_conn, "jobs.faults.record", 30, retries=0)
    name, pid = running_child(redis_conn, job_id)
    os.kill(pid, signal.SIGKILL)
    assert wait_status(redis_conn, job_id, timeout=15) == "failed"
    body = client.get(f"/api/jobs/{job_id}").get_json()
    assert body["error"] == {"type": "WorkerDied", "message": f"worker {name} died (killed by signal 9, SIGKILL)"}
    assert body["ended_at"]
    assert runs(redis_conn, job_id) == 1
    assert [event["event"] for event in events(redis_conn, job_id)][-2:] == ["abandoned", "failed"]
    # The replacement takes new work.
    follow_up = enqueue(redis_conn, "jobs.faults.record")
    assert wait_status(redis_conn, follow_up) == "finished"


def test_supervisor_and_children_killed_together_is_found_by_lost_heartbeat(redis_server, redis_conn):
    first = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1"))
    second = None
    try:
        job_id = enqueue(redis_conn, "jobs.faults.record", 60)
        name, child = running_child(redis_conn, job_id)
        for pid in (first.pid, child):  # the whole machine goes: no process is left to tell
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: not pid_alive(child), 5)
        first.stop()
        second = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1"))
        try:
            wait_until(lambda: runs(redis_conn, job_id) >= 2, 40, message="re-run after lost heartbeat")
        except AssertionError as exc:
            status = redis_conn.hget(f"rq:job:{job_id}", "status")
            raise AssertionError(
                f"{exc}: runs={runs(redis_conn, job_id)} status={status!r} attempts={attempts(redis_conn, job_id)}\n"
                f"--- second worker.py ---\n{second.output()[-4000:]}"
            ) from None
        recovered_after = time.monotonic() - killed_at
        assert runs(redis_conn, job_id) == 2  # one recovery, one re-run: no duplicate beyond the retry
        history = attempts(redis_conn, job_id)
        assert history[0][0] == "RETRIED" and f"worker {name} lost heartbeat" in history[0][1]
        report(
            "supervisor_and_children_sigkill",
            runs=1,
            jobs=1,
            lost=0,
            duplicated=1,
            abandon_after=abandon_after(),
            recovery_seconds=round(recovered_after, 2),
        )
        assert recovered_after < abandon_after() + 10
        assert name not in worker_children(redis_conn)  # the dead worker is unregistered
    finally:
        first.stop()
        if second is not None:
            second.stop()
