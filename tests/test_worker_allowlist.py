"""Workers run only what the catalog allows, whoever enqueued the job (here: plain RQ code, as any
producer that can write to the Redis would)."""

from __future__ import annotations

import time

import pytest
from rq import Callback, Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.servers import start_worker
from webapp.store import keys
from webapp.store.events import decode_entry

MARKER = "allowlist:marker"
HERE = "tests.test_worker_allowlist"  # as worker.py imports this module (pytest may name it otherwise)


def record_marker() -> str:
    """A function outside the allow-list that leaves a trace if it is ever called."""
    from rq import get_current_job

    get_current_job().connection.set(MARKER, "called")
    return "called"


def wait_for_end(job: Job, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.get_status(refresh=True)
        if status is not None and status.value in ("finished", "failed"):
            return status.value
        time.sleep(0.05)
    raise AssertionError(f"job {job.id} did not end within {timeout} s")


def events_of(redis_conn, job_id: str) -> list[dict]:
    return [decode_entry(*entry) for entry in redis_conn.xrange(keys.job_events(job_id))]


def timeline_ending_in(redis_conn, job_id: str, last: str, timeout: float = 10.0) -> list[str]:
    """The job's events once `last` is recorded: on RQ's failure path the job hash says `failed`
    a moment before the worker appends the `failed` event, so a reader may see them apart."""
    deadline = time.monotonic() + timeout
    while True:
        timeline = [event["event"] for event in events_of(redis_conn, job_id)]
        if (timeline and timeline[-1] == last) or time.monotonic() > deadline:
            return timeline
        time.sleep(0.05)


@pytest.fixture
def queue(redis_conn):
    return Queue("default", connection=redis_conn, serializer=JSONSerializer)


def test_a_function_outside_the_allow_list_fails_without_running(redis_server, redis_conn, queue):
    worker = start_worker(redis_server.url)
    try:
        refused = queue.enqueue("os.getcwd", retry=None)
        marked = queue.enqueue(f"{HERE}.record_marker")
        with_callback = queue.enqueue("jobs.basic.add", 1, 2, on_success=Callback(f"{HERE}.record_marker"))
        allowed = queue.enqueue("jobs.basic.add", 2, 3)
        for job in (refused, marked, with_callback):
            assert wait_for_end(job) == "failed", job.id
            job.refresh()
            assert job.meta["error"]["type"] == "JobNotAllowed"
            message = job.meta["error"]["message"]
            assert "allow-list" in message and "WORKER_ALLOWED_PREFIXES" in message
            assert job.return_value() is None
            timeline = timeline_ending_in(redis_conn, job.id, "failed")
            assert timeline[-1] == "failed", timeline
            assert timeline.count("started") == 1  # failed at once, never retried
        assert "os.getcwd" in refused.meta["error"]["message"]
        assert redis_conn.get(MARKER) is None  # neither the function nor the callback ran
        # a plain-RQ enqueue of an allow-listed function still runs
        assert wait_for_end(allowed) == "finished"
        assert allowed.return_value() == 5
    finally:
        worker.stop()


def test_an_operator_can_admit_a_plain_rq_producers_functions(redis_server, redis_conn, queue):
    worker = start_worker(redis_server.url, WORKER_ALLOWED_PREFIXES=f"{HERE}.")
    try:
        job = queue.enqueue(f"{HERE}.record_marker")
        assert wait_for_end(job) == "finished", worker.output()[-3000:]
        assert redis_conn.get(MARKER) == b"called"
        outside = queue.enqueue("os.getcwd")
        assert wait_for_end(outside) == "failed"  # only the admitted prefix
    finally:
        worker.stop()


def test_data_that_is_not_json_is_refused_not_unpickled(redis_server, redis_conn):
    pickled = Queue("default", connection=redis_conn)  # RQ's default serializer: pickle
    worker = start_worker(redis_server.url)
    try:
        job = pickled.enqueue("jobs.basic.add", 1, 2)
        assert wait_for_end(job) == "failed"
        meta = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer).meta
        assert meta["error"]["type"] == "JobNotAllowed" and "JSON" in meta["error"]["message"]
    finally:
        worker.stop()
