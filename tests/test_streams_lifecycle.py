"""Lifecycle events beyond the happy path: abandoned jobs, the writers' helper, trimming."""

from __future__ import annotations

import os
import signal
import time

from rq import Queue, Worker
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from tests.servers import start_worker
from webapp.store import keys
from webapp.store.events import EVENT_NAMES, EventLog, decode_entry, is_terminal
from webapp.worker.rqworker import ServiceWorker


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def timeline(redis_conn, job_id: str) -> list[dict]:
    return [decode_entry(*entry) for entry in redis_conn.xrange(keys.job_events(job_id))]


def test_a_job_whose_worker_died_is_recorded_as_abandoned(app, redis_server, redis_conn):
    worker = start_worker(redis_server.url)
    try:
        app.config["DEFAULT_JOB_RETRIES"] = 0  # RQ's maintenance then fails the job outright
        job_id = app.extensions["jobsvc"].submit(None, "sleep", [60])["id"]
        wait_for(lambda: any(e["event"] == "started" for e in timeline(redis_conn, job_id)), what="the job to start")
        (running,) = [w for w in Worker.all(connection=redis_conn) if w.get_current_job_id() == job_id]
        # The worker process and its supervisor at once, mid-job: no supervisor is left to
        # recover the job itself (webapp/worker/recovery.py), so RQ's own maintenance is what finds it.
        os.kill(worker.pid, signal.SIGKILL)
        os.kill(running.pid, signal.SIGKILL)

        # RQ's registry maintenance (any live worker, every maintenance interval) finds the job;
        # run it now, with the exception handlers a ServiceWorker registers.
        queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
        maintainer = ServiceWorker([queue], connection=redis_conn, app=app)
        registry = StartedJobRegistry("default", connection=redis_conn, serializer=JSONSerializer)
        registry.cleanup(timestamp=time.time() + 10**6, exception_handlers=maintainer._exc_handlers)
    finally:
        worker.stop()

    events = timeline(redis_conn, job_id)
    assert [e["event"] for e in events[:2]] == ["queued", "started"]
    last = events[-1]
    assert last["event"] == "abandoned" and last["status"] == "failed" and is_terminal(last)
    assert last["name"] == "sleep" and last["error"]["type"] == "AbandonedJobError"
    assert redis_conn.hget(f"rq:job:{job_id}", "status") == b"failed"
    assert 604000 < redis_conn.ttl(keys.job_events(job_id)) <= 604800  # kept as long as a failed job


def test_for_job_takes_name_queue_and_status_from_the_rq_job(redis_conn):
    log = EventLog(redis_conn, "test:events", maxlen=100, default_ttl=60)
    queue = Queue("low", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue("jobs.basic.add", 1, 2, result_ttl=500, failure_ttl=900, meta={"name": "add"})
    log.for_job("queued", job)
    job.cancel()
    log.for_job("canceled", job, status="canceled", reason="by the user")
    queued, canceled = timeline(redis_conn, job.id)
    assert (queued["event"], queued["name"], queued["queue"], queued["status"]) == ("queued", "add", "low", "queued")
    assert (canceled["event"], canceled["status"], canceled["reason"]) == ("canceled", "canceled", "by the user")
    assert is_terminal(canceled) and not is_terminal(queued)
    log.for_job("failed", job, status="failed")
    assert 800 < redis_conn.ttl(keys.job_events(job.id)) <= 900  # the job's failure TTL
    assert set(EVENT_NAMES) >= {"queued", "scheduled", "deferred", "canceled", "abandoned"}


def test_a_job_timeline_is_trimmed_and_a_replay_says_so(app, redis_conn, client):
    log = EventLog(redis_conn, "test:events", maxlen=10000, default_ttl=60, job_maxlen=100)
    for step in range(500):
        log.append("progress", job_id="chatty", name="sleep", queue="default", status="started", step=step)
    assert 100 <= redis_conn.xlen(keys.job_events("chatty")) < 500

    # The replay of a trimmed timeline starts with a gap event naming the oldest kept.
    body = client.get("/api/jobs/chatty/events").get_data(as_text=True)  # no job: ends after the replay
    app.extensions["jobsvc_hub"].close()
    frames = body.split("\n\n")
    oldest = redis_conn.xrange(keys.job_events("chatty"), count=1)[0][0].decode()
    assert frames[0] == "retry: 2000"
    assert frames[1] == f'event: gap\ndata: {{"requested":null,"oldest":"{oldest}"}}'
    assert frames[2].startswith(f"id: {oldest}\nevent: progress\n")
