"""SIGTERM: the running job finishes and no new one starts (warm); when the grace is over
or a second signal comes, the job is handed back to the front of its queue (cold)."""

from __future__ import annotations

import os
import signal
import time

from tests.faults.faultkit import (
    enqueue,
    events,
    fault_env,
    fetch,
    pid_alive,
    report,
    runs,
    status,
    wait_until,
    worker_children,
)
from tests.servers import start_worker


def start_one(redis_server, redis_conn, **env):
    process = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1", **env))
    wait_until(lambda: len(worker_children(redis_conn)) == 1, 20, message="worker registered")
    return process


def test_warm_sigterm_finishes_the_job_takes_no_new_one_and_exits_0(redis_server, redis_conn):
    process = start_one(redis_server, redis_conn)
    try:
        running = enqueue(redis_conn, "jobs.faults.record", 1.5)
        wait_until(lambda: status(redis_conn, running) == "started", 20)
        waiting = enqueue(redis_conn, "jobs.faults.record")
        process.signal(signal.SIGTERM)
        assert process.process.wait(20) == 0, process.output()
        assert status(redis_conn, running) == "finished"
        assert status(redis_conn, waiting) == "queued" and runs(redis_conn, waiting) == 0
        assert redis_conn.lrange("rq:queue:default", 0, -1) == [waiting.encode()]
        report("sigterm_warm", runs=1, jobs=2, lost=0, duplicated=0, note="job finished, next left queued, exit 0")
    finally:
        process.stop()


def test_grace_over_hands_the_job_back_to_the_front_with_its_retries(redis_server, redis_conn):
    process = start_one(redis_server, redis_conn, WORKER_SHUTDOWN_GRACE="1")
    try:
        first = enqueue(redis_conn, "jobs.faults.record")  # occupies nothing: just proves order
        wait_until(lambda: status(redis_conn, first) == "finished", 20)
        running = enqueue(redis_conn, "jobs.faults.record", 60)
        wait_until(lambda: status(redis_conn, running) == "started", 20)
        behind = enqueue(redis_conn, "jobs.faults.record")
        process.signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert process.process.wait(20) == 0, process.output()
        stopped_after = time.monotonic() - signalled
        assert status(redis_conn, running) == "queued"
        assert redis_conn.lrange("rq:queue:default", 0, -1) == [running.encode(), behind.encode()]
        assert fetch(redis_conn, running).retries_left == 1  # handing back costs no retry
        assert redis_conn.zcard("rq:wip:default") == 0
        tail = events(redis_conn, running)[-2:]
        assert [event["event"] for event in tail] == ["abandoned", "retrying"] and tail[1]["handed_back"]
        # The next worker runs it again from the start.
        again = start_one(redis_server, redis_conn)
        try:
            wait_until(lambda: status(redis_conn, running) == "started", 20)
        finally:
            again.signal(signal.SIGINT)
            again.signal(signal.SIGINT)  # a second signal: cold at once, the job handed back again
            assert again.stop(20) == 0
        assert status(redis_conn, running) == "queued"
        report("sigterm_cold_grace_over", runs=1, jobs=1, lost=0, duplicated=0, grace=1,
               stop_seconds=round(stopped_after, 2))  # fmt: skip
    finally:
        process.stop()


def test_heroku_style_sigterm_to_every_process_is_one_warm_shutdown(redis_server, redis_conn):
    process = start_one(redis_server, redis_conn)
    try:
        job_id = enqueue(redis_conn, "jobs.faults.record", 1.5)
        wait_until(lambda: status(redis_conn, job_id) == "started", 20)
        child = worker_children(redis_conn)[fetch(redis_conn, job_id).worker_name]
        for pid in (process.pid, child):  # like Heroku: every process of the dyno at once
            os.kill(pid, signal.SIGTERM)
        assert process.process.wait(20) == 0, process.output()
        assert status(redis_conn, job_id) == "finished" and runs(redis_conn, job_id) == 1
        assert not pid_alive(child)
        report("sigterm_every_process", runs=1, jobs=1, lost=0, duplicated=0)
    finally:
        process.stop()
