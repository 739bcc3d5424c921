"""The fast worker's STEP script and fallbacks, on a real Redis, read back through RQ's API."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from rq import Queue, Retry
from rq.executions import Execution
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from tests.servers import start_worker
from webapp.infra.clock import iso
from webapp.store import keys
from webapp.worker.fastworker import FastWorker

HERE = "tests.test_fastworker"


def returns_retry() -> Retry:
    """A job that asks RQ to run it again once."""
    return Retry(max=1)


def current_pid() -> int:
    return os.getpid()


def kills_itself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def queues(app, redis_conn):
    return {
        name: Queue(name, connection=redis_conn, serializer=JSONSerializer, default_timeout=60)
        for name in app.config["QUEUES"]
    }


# This module's own job functions, enqueued with plain RQ: admitted as a plain-RQ producer's are.
TEST_FUNCTIONS = f"{HERE}."


@pytest.fixture
def worker(app, redis_conn, queues):
    app.config["WORKER_ALLOWED_PREFIXES"] = [TEST_FUNCTIONS]
    worker = FastWorker(list(queues.values()), connection=redis_conn, app=app, default_result_ttl=600)
    yield worker
    worker.close_step_connections()  # tests call STEP without work(), which would close them


def enqueue(queue: Queue, func: str = f"{HERE}.add", args=(1, 2), **options) -> Job:
    return queue.enqueue_call(func=func, args=args, meta={"name": "add"}, **options)


def fetch(job: Job) -> Job:
    return Job.fetch(job.id, connection=job.connection, serializer=JSONSerializer)


def events_of(redis_conn, job_id: str) -> list[str]:
    import json

    return [json.loads(fields[b"data"])["event"] for _, fields in redis_conn.xrange(keys.job_events(job_id))]


def test_claim_takes_the_highest_priority_queue_and_registers_the_execution(worker, queues, redis_conn):
    low = enqueue(queues["low"])
    high = enqueue(queues["high"])
    status, claimed = worker._step(None, claim=True)
    assert status is None
    queue, job, execution = claimed
    assert (queue.name, job.id) == ("high", high.id)
    # what RQ's own API sees: started, in the started registry with this execution
    assert fetch(high).get_status() == "started"
    assert fetch(high).worker_name == worker.name
    registry = StartedJobRegistry("high", connection=redis_conn)
    assert registry.get_job_and_execution_ids(cleanup=False) == [(high.id, execution.id)]
    assert Execution.fetch(execution.id, high.id, redis_conn).worker_name == worker.name
    assert redis_conn.smembers(worker.executions_key) == {execution.composite_key.encode()}
    assert queues["high"].get_job_ids() == [] and queues["low"].get_job_ids() == [low.id]
    assert events_of(redis_conn, high.id) == ["started"]


def test_finish_writes_what_rq_reads(worker, queues, redis_conn):
    job = enqueue(queues["default"], args=(2, 3))
    _, (queue, claimed, execution) = worker._step(None, claim=True)
    pending = worker._perform(queue, claimed, execution)
    assert pending is not None  # a plain success takes the fast path
    status, next_claim = worker._step(pending, claim=True)
    assert status == 1 and next_claim is None
    done = fetch(job)
    assert done.get_status() == "finished"
    assert done.return_value() == 5
    result = done.latest_result()
    assert result.type == Result.Type.SUCCESSFUL and result.execution_id == execution.id
    assert done.started_at <= done.ended_at
    assert job.id in FinishedJobRegistry("default", connection=redis_conn)
    assert StartedJobRegistry("default", connection=redis_conn).get_job_ids(cleanup=False) == []
    assert not redis_conn.exists(execution.key)
    assert 0 < redis_conn.ttl(job.key) <= 600
    assert events_of(redis_conn, job.id) == ["started", "finished"]


def test_finish_sent_twice_records_once(worker, queues, redis_conn):
    job = enqueue(queues["default"])
    _, claimed = worker._step(None, claim=True)
    pending = worker._perform(*claimed)
    assert worker._step(pending, claim=False)[0] == 1
    assert worker._step(pending, claim=False)[0] == 1  # a retry after a lost reply
    assert len(fetch(job).results()) == 1


def test_claim_skips_ids_whose_job_is_gone(worker, queues, redis_conn):
    gone = enqueue(queues["default"])
    kept = enqueue(queues["default"])
    redis_conn.delete(gone.key)
    _, (_, job, _) = worker._step(None, claim=True)
    assert job.id == kept.id
    assert worker._step(None, claim=True) == (None, None)


def test_wake_tokens_stay_bounded_by_the_queue(worker, queues, redis_conn):
    for _ in range(3):
        enqueue(queues["default"])
    redis_conn.rpush(keys.wake("default"), *["1"] * 10)
    worker._step(None, claim=True)
    assert 1 <= redis_conn.llen(keys.wake("default")) <= 2
    worker._step(None, claim=True)
    worker._step(None, claim=True)
    assert redis_conn.llen(keys.wake("default")) == 0
    redis_conn.rpush(keys.wake("low"), "1")
    assert worker._step(None, claim=True) == (None, None)
    assert not redis_conn.exists(keys.wake("low"))  # an empty claim clears stale tokens


def test_dependents_added_while_running_are_enqueued_by_rqs_path(worker, queues, redis_conn):
    parent = enqueue(queues["default"])
    _, claimed = worker._step(None, claim=True)
    pending = worker._perform(*claimed)
    child = enqueue(queues["default"], args=(10, 20), depends_on=parent)
    assert fetch(child).get_status() == "deferred"
    status, _ = worker._step(pending, claim=False)
    assert status == 0  # FINISH left it to RQ ...
    worker._after_finish(pending, status)
    assert fetch(parent).get_status() == "finished" and fetch(parent).return_value() == 3
    assert fetch(child).get_status() == "queued"  # ... which enqueued the dependent
    FastWorker(list(queues.values()), connection=redis_conn, app=worker.app).work(burst=True)
    assert fetch(child).return_value() == 30
    assert events_of(redis_conn, parent.id) == ["started", "finished"]


def test_a_job_with_a_dependency_runs_after_it(worker, queues):
    first = enqueue(queues["default"], args=(1, 1))
    second = enqueue(queues["default"], args=(2, 2), depends_on=first)
    worker.work(burst=True)
    assert fetch(first).return_value() == 2 and fetch(second).return_value() == 4
    assert fetch(first).ended_at <= fetch(second).started_at


def test_a_retry_return_value_goes_through_rqs_retry(worker, queues):
    job = enqueue(queues["default"], func=f"{HERE}.returns_retry", args=())
    _, claimed = worker._step(None, claim=True)
    assert worker._perform(*claimed) is None  # recorded by RQ's own code
    again = fetch(job)
    assert again.get_status() == "queued" and again.number_of_retries == 1
    assert again.latest_result().type == Result.Type.RETRIED
    assert job.id in queues["default"].get_job_ids()


def test_a_failure_is_recorded_by_rq_with_the_error(worker, queues, redis_conn):
    job = enqueue(queues["default"], func="jobs.basic.fail", args=("broken",))
    worker.work(burst=True)
    failed = fetch(job)
    assert failed.get_status() == "failed"
    assert failed.meta["error"] == {"type": "RuntimeError", "message": "broken"}
    assert job.id in FailedJobRegistry("default", connection=redis_conn)
    assert failed.enqueued_at is not None and failed.created_at <= failed.enqueued_at
    assert events_of(redis_conn, job.id) == ["started", "failed"]


def test_result_ttl_zero_deletes_the_job_like_rq(worker, queues, redis_conn):
    job = enqueue(queues["default"], result_ttl=0)
    worker.work(burst=True)
    assert not redis_conn.exists(job.key)


def wait_status(job: Job, statuses: tuple[str, ...], timeout: float = 20.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = fetch(job)
        # The fetched snapshot's own status: get_status() would re-read it from Redis, and a job
        # ending in between would come back "finished" with the snapshot's ended_at still None.
        if current.get_status(refresh=False) in statuses:
            return current
        time.sleep(0.02)
    raise AssertionError(f"job {job.id} is {fetch(job).get_status()} after {timeout} s")


def test_worker_processes_are_listed_by_rq(redis_server, redis_conn, queues):
    from rq import Worker

    process = start_worker(redis_server.url, "--processes", "2", WORKER_ALLOWED_PREFIXES=TEST_FUNCTIONS)
    try:
        job = enqueue(queues["default"])
        assert wait_status(job, ("finished",)).return_value() == 3
        deadline = time.monotonic() + 20
        while len(Worker.all(connection=redis_conn)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = Worker.all(connection=redis_conn)
        assert len(workers) == 2
        assert {w.queue_names()[0] for w in workers} == {"high"}
        assert sum(w.successful_job_count for w in workers) == 1
        # `rq info` (RQ's own CLI) lists them too
        import subprocess
        import sys
        from pathlib import Path

        rq_cli = str(Path(sys.executable).parent / "rq")
        info = subprocess.run(
            [rq_cli, "info", "-u", redis_server.url, "-S", "json"], capture_output=True, text=True, timeout=60
        )
        assert info.returncode == 0, info.stderr
        assert all(w.name in info.stdout for w in workers), info.stdout
        assert "2 workers" in info.stdout, info.stdout
    finally:
        process.stop()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_worker_idle_after_a_failed_job_is_shown_idle(redis_server, redis_conn, queues, threads):
    """A failure ends through RQ's own path, not STEP's finish, which writes `idle`: the worker
    was then shown busy (RQ, rq-dashboard, /api/workers) until its next job."""
    from rq import Worker

    process = start_worker(redis_server.url, WORKER_THREADS=threads, WORKER_ALLOWED_PREFIXES=TEST_FUNCTIONS)
    try:
        job = enqueue(queues["default"], func="jobs.basic.fail", args=("broken",))
        wait_status(job, ("failed",))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = [worker.get_state() for worker in Worker.all(connection=redis_conn)]
            if states == ["idle"]:
                break
            time.sleep(0.05)
        assert states == ["idle"], (states, process.output())
    finally:
        process.stop()


def test_isolated_queue_runs_jobs_in_a_child_and_fails_a_killed_one(redis_server, redis_conn, queues):
    process = start_worker(redis_server.url, WORKER_ISOLATED_QUEUES="low", WORKER_ALLOWED_PREFIXES=TEST_FUNCTIONS)
    try:
        isolated = enqueue(queues["low"], func=f"{HERE}.current_pid", args=())
        inline = enqueue(queues["default"], func=f"{HERE}.current_pid", args=())
        killed = enqueue(queues["low"], func=f"{HERE}.kills_itself", args=())
        after = enqueue(queues["low"])
        isolated_pid = wait_status(isolated, ("finished",)).return_value()
        inline_pid = wait_status(inline, ("finished",)).return_value()
        assert isolated_pid != inline_pid
        failed = wait_status(killed, ("failed",))
        assert failed.meta["error"]["type"] == "WorkHorseTerminated"
        assert "signal 9" in failed.meta["error"]["message"]
        assert wait_status(after, ("finished",)).return_value() == 3  # the worker carried on
    finally:
        process.stop()


def test_threads_run_io_bound_jobs_side_by_side(redis_server, redis_conn, queues):
    process = start_worker(redis_server.url, WORKER_THREADS="4")
    try:
        jobs = [enqueue(queues["default"], func="jobs.basic.sleep", args=(0.5,)) for _ in range(4)]
        done = [wait_status(job, ("finished",)) for job in jobs]
        assert all(job.return_value() == {"slept": 0.5} for job in done)
        # all four overlapped: each started before any other ended
        assert max(job.started_at for job in done) < min(job.ended_at for job in done)
    finally:
        process.stop()


def test_the_worker_carries_on_after_redis_restarts(app):
    from redis import Redis

    from tests.servers import RedisServer

    server = RedisServer(appendonly=True).start()
    process = start_worker(server.url, WORKER_WAKE_TIMEOUT="0.5", WORKER_ALLOWED_PREFIXES=TEST_FUNCTIONS)
    try:
        connection = Redis.from_url(server.url)
        queue = Queue("default", connection=connection, serializer=JSONSerializer)
        assert wait_status(enqueue(queue), ("finished",)).return_value() == 3
        server.kill()  # the worker loses Redis (and its loaded script) while idle
        time.sleep(1.0)
        server.start()
        connection = Redis.from_url(server.url)
        queue = Queue("default", connection=connection, serializer=JSONSerializer)
        job = enqueue(queue, args=(20, 22))
        assert wait_status(job, ("finished",), timeout=40).return_value() == 42, process.output()[-2000:]
        assert process.process.poll() is None
    finally:
        process.stop()
        server.cleanup()


def test_step_reloads_its_script_after_a_script_flush(worker, queues, redis_conn):
    job = enqueue(queues["default"])
    redis_conn.script_flush()  # as after a Redis restart without persistence
    _, (_, claimed, _) = worker._step(None, claim=True)
    assert claimed.id == job.id


# -- the idle wait with the claim queued behind it ------------------------------------------------


def wait_then_claim_in_thread(worker: FastWorker) -> tuple[threading.Thread, dict]:
    """`_wait_then_claim` in a thread (it blocks in Redis until a wake token or its timeout)."""
    outcome: dict = {}

    def wait() -> None:
        outcome["claimed"] = worker._wait_then_claim()
        outcome["returned"] = time.monotonic()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    return waiter, outcome


def test_a_woken_worker_gets_its_job_with_the_wake_up_stamped_at_the_claim(worker, queues, redis_conn):
    worker.wake_timeout = 10
    waiter, outcome = wait_then_claim_in_thread(worker)
    time.sleep(0.5)  # the claim's arguments were built when the wait began, half a second ago
    job = enqueue(queues["default"])
    redis_conn.rpush(keys.wake("default"), "1")  # as the service's submission pushes it
    pushed = time.monotonic()
    waiter.join(10)
    assert outcome["returned"] - pushed < 1.0  # woken by the token, not by the 10 s timeout
    queue, claimed, execution = outcome["claimed"]
    assert (queue.name, claimed.id) == ("default", job.id)
    stored = fetch(job)
    # the claim's clock is Redis's when the claim ran, not the worker's when it began to wait
    assert stored.enqueued_at <= stored.started_at <= stored.enqueued_at + timedelta(seconds=1)
    assert redis_conn.hget(job.key, "started_at").decode() == utcformat(claimed.started_at)
    assert claimed.started_at == execution.created_at
    assert Execution.fetch(execution.id, job.id, redis_conn).created_at == execution.created_at
    started = json.loads(redis_conn.xrange(keys.job_events(job.id))[0][1][b"data"])
    assert started["event"] == "started" and started["at"] == iso(claimed.started_at)
    assert worker._step(worker._perform(queue, claimed, execution), claim=False)[0] == 1
    assert fetch(job).return_value() == 3


def test_a_job_pushed_without_a_wake_token_is_claimed_when_the_wait_times_out(worker, queues, redis_conn):
    worker.wake_timeout = 0.3
    job = enqueue(queues["low"])  # plain RQ pushes no wake token
    began = time.monotonic()
    queue, claimed, _ = worker._wait_then_claim()
    assert (queue.name, claimed.id) == ("low", job.id)
    assert time.monotonic() - began >= 0.25
    assert worker._wait_then_claim() is None  # nothing left: the claim finds nothing


def test_the_claim_behind_the_wait_reloads_its_script_after_a_script_flush(worker, queues, redis_conn):
    worker.wake_timeout = 0.1
    job = enqueue(queues["default"])
    redis_conn.script_flush()  # as after a Redis restart without persistence
    _, claimed, _ = worker._wait_then_claim()
    assert claimed.id == job.id
    assert fetch(job).get_status() == "started"


def test_a_warm_shutdown_ends_the_idle_wait_at_once(redis_server, redis_conn, queues):
    process = start_worker(redis_server.url, WORKER_WAKE_TIMEOUT="30", WORKER_ALLOWED_PREFIXES=TEST_FUNCTIONS)
    try:
        job = enqueue(queues["default"])
        redis_conn.rpush(keys.wake("default"), "1")
        assert wait_status(job, ("finished",)).return_value() == 3  # plain RQ producers' jobs wake it too
        time.sleep(0.5)  # back in its 30 s wait
        asked = time.monotonic()
        assert process.stop(timeout=20) == 0, process.output()[-3000:]
        assert time.monotonic() - asked < 5, process.output()[-3000:]
        assert redis_conn.llen(keys.queue("default")) == 0
        assert StartedJobRegistry("default", connection=redis_conn).get_job_ids(cleanup=False) == []
    finally:
        process.stop()


@pytest.mark.parametrize("refused", ["-client|unblock", "-client|id -client|unblock"])
def test_where_an_acl_refuses_client_commands_the_wait_still_claims_and_stops(redis_server, redis_conn, refused):
    """Managed Redis often runs the app as a user without `@dangerous` commands (CLIENT UNBLOCK
    is one): the worker still runs jobs and a warm shutdown still ends its wait at once."""
    redis_conn.execute_command(
        "ACL", "SETUSER", "jobsvc-limited", "on", ">limited-password", "~*", "&*", "+@all", *refused.split()
    )
    url = redis_server.url.replace("redis://", "redis://jobsvc-limited:limited-password@")
    process = start_worker(url, WORKER_WAKE_TIMEOUT="30", WORKER_ALLOWED_PREFIXES=TEST_FUNCTIONS)
    try:
        queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
        job = enqueue(queue)
        redis_conn.rpush(keys.wake("default"), "1")
        assert wait_status(job, ("finished",)).return_value() == 3, process.output()[-3000:]
        time.sleep(0.5)  # back in its 30 s wait
        asked = time.monotonic()
        assert process.stop(timeout=20) == 0, process.output()[-3000:]
        assert time.monotonic() - asked < 5, process.output()[-3000:]
        assert StartedJobRegistry("default", connection=redis_conn).get_job_ids(cleanup=False) == []
    finally:
        process.stop()
        redis_conn.execute_command("ACL", "DELUSER", "jobsvc-limited")
