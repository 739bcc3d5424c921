"""Redis faults with real processes: an outage spanning a job's end, the API during the
outage (through gunicorn), workers resuming by themselves, a kill -9 restart with AOF,
and the start-up checks of an unsafe Redis."""

from __future__ import annotations

import os
import re
import signal
import time

import httpx
import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from tests.faults.faultkit import attempts, enqueue, fault_env, report, runs, status, wait_status, wait_until
from tests.faults.faultkit import events as job_events
from tests.faults.faultkit import worker_children as children
from tests.servers import BIN, RedisServer, ServiceProcess, free_port, service_env, start_web, start_worker
from webapp.store import keys


@pytest.fixture
def aof_redis():
    server = RedisServer(appendonly=True).start()
    yield server
    server.cleanup()


def test_outage_spanning_a_job_end_api_503_and_workers_resuming(aof_redis):
    connection = aof_redis.client()
    web, base = start_web(aof_redis.url)
    worker = start_worker(aof_redis.url, **fault_env(WORKER_PROCESSES="1"))
    try:
        wait_until(lambda: len(children(connection)) == 1, 20, message="worker registered")
        job_id = enqueue(connection, "jobs.faults.quiet_sleep", 2.0)
        # the job's one Redis call (it counts its run) must be done before Redis goes: `started`
        # alone is too early, under load the call would fail and the job be retried, rightly
        wait_until(lambda: runs(connection, job_id) == 1, 20, message="the job counted its run")
        aof_redis.kill()
        outage_began = time.monotonic()

        latencies = []
        for _ in range(5):
            began = time.monotonic()
            response = httpx.get(f"{base}/api/jobs/{job_id}", timeout=5)
            latencies.append(time.monotonic() - began)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "redis_unavailable"
            assert response.headers["Retry-After"] == "1"
        posted = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [1, 2]}, timeout=5)
        assert posted.status_code == 503
        assert max(latencies) < 1.0, latencies

        time.sleep(max(0.0, 3.0 - (time.monotonic() - outage_began)))  # the job ends meanwhile
        aof_redis.start()  # same port, same data directory: the AOF is replayed
        back_at = time.monotonic()
        connection = aof_redis.client()
        assert wait_status(connection, job_id, timeout=30) == "finished"
        finish_recorded_after = time.monotonic() - back_at
        assert runs(connection, job_id) == 1, worker.output()  # not run again
        assert [kind for kind, _ in attempts(connection, job_id)] == ["SUCCESSFUL"], worker.output()

        api_back = wait_until(lambda: httpx.get(f"{base}/api/jobs/{job_id}", timeout=5).status_code == 200, 10)
        assert api_back
        follow_up = enqueue(connection, "jobs.faults.record")
        assert wait_status(connection, follow_up, timeout=30) == "finished"
        resumed_after = time.monotonic() - back_at
        time.sleep(4.5)  # longer than ABANDON_AFTER: the reaper must not take the worker for dead
        assert runs(connection, job_id) == 1 and runs(connection, follow_up) == 1
        # the background loops said once that Redis was gone and once that it was back, not a
        # warning per retry (every 0.5 s for the scheduler)
        log = worker.output()
        for loop in ("scheduler", "schedule ticker"):
            assert len(re.findall(rf"\b{loop}: .*; retrying until Redis answers", log)) == 1, log
            assert len(re.findall(rf"\b{loop}: Redis answers again, after", log)) == 1, log
        report(
            "redis_outage_during_job_end",
            runs=1,
            jobs=2,
            lost=0,
            duplicated=0,
            api_503_max_seconds=round(max(latencies), 3),
            finish_recorded_seconds_after_restart=round(finish_recorded_after, 2),
            worker_resumed_seconds_after_restart=round(resumed_after, 2),
        )
    finally:
        worker.stop()
        web.stop()


def test_workers_dying_through_a_long_outage_never_make_the_supervisor_give_up(aof_redis):
    """While Redis is away the supervisor cannot record a dead worker's end; it replaces the
    worker and keeps that bookkeeping pending. A second death more than 10 s after the first
    (its replacement killed too) once ended the supervisor itself, with status 0: under honcho,
    the whole stack stopped."""
    connection = aof_redis.client()
    worker = start_worker(aof_redis.url, **fault_env(WORKER_PROCESSES="1"))
    try:
        wait_until(lambda: len(children(connection)) == 1, 20, message="worker registered")
        [first] = children(connection).values()
        aof_redis.kill()
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()

        def started_pids() -> list[int]:
            return [int(pid) for pid in re.findall(r"worker process (\d+) \(\S+\) started", worker.output())]

        wait_until(lambda: len(started_pids()) == 2, 20, message="a replacement started")
        time.sleep(max(0.0, 11.0 - (time.monotonic() - killed_at)))
        os.kill(started_pids()[1], signal.SIGKILL)
        wait_until(lambda: len(started_pids()) == 3, 20, message="another replacement started")
        assert worker.process.poll() is None, worker.output()

        aof_redis.start()
        connection = aof_redis.client()
        job_id = enqueue(connection, "jobs.faults.record")
        assert wait_status(connection, job_id, timeout=30) == "finished", worker.output()
        assert worker.process.poll() is None
    finally:
        worker.stop()


def test_kill_9_and_restart_with_aof_keeps_every_queued_job(aof_redis):
    connection = aof_redis.client()
    job_ids = [enqueue(connection, "jobs.faults.record", queue=("high", "default", "low")[n % 3]) for n in range(100)]
    aof_redis.kill()
    aof_redis.start()
    connection = aof_redis.client()
    assert sum(connection.llen(f"rq:queue:{name}") for name in ("high", "default", "low")) == 100
    worker = start_worker(aof_redis.url, **fault_env(WORKER_PROCESSES="2"))
    try:
        wait_until(
            lambda: all(status(connection, job_id) == "finished" for job_id in job_ids), 60, 0.2, "all 100 finished"
        )
        report("redis_restart_aof", runs=1, jobs=100, lost=0, duplicated=0)
    finally:
        worker.stop()


def test_unsafe_redis_is_reported_and_refused_in_production(redis_server, redis_conn):
    # The suite's Redis runs with `--save "" --appendonly no`: no persistence.
    web = ServiceProcess(
        [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", "webapp:create_app()"],
        service_env(redis_server.url, HOST="127.0.0.1", PORT=str(free_port()), REQUIRE_DURABLE_REDIS="1"),
        "web",
    )
    try:
        assert web.process.wait(30) != 0  # gunicorn gives up: its workers fail to boot
        assert "refusing to start" in web.output() and "persistence is off" in web.output()
    finally:
        web.stop()
    worker = start_worker(redis_server.url, REQUIRE_DURABLE_REDIS="1")
    try:
        assert worker.process.wait(30) != 0
        assert "refusing to start" in worker.output() and "appendonly yes" in worker.output()
    finally:
        worker.stop()
    warned = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1"))
    try:
        wait_until(lambda: "UNSAFE REDIS: persistence is off" in warned.output(), 20, message="warning")
    finally:
        warned.stop()


def test_an_evicting_policy_is_reported(redis_conn):
    from webapp.infra.checks import problems

    redis_conn.config_set("maxmemory-policy", "allkeys-lru")
    try:
        assert any("allkeys-lru" in problem for problem in problems(redis_conn))
    finally:
        redis_conn.config_set("maxmemory-policy", "noeviction")


@pytest.mark.parametrize("threads", [1, 2])
def test_a_claim_whose_reply_a_live_worker_never_got_is_recovered_once_redis_answers(redis_server, threads):
    """What a failover leaves behind: on the new master a job is `started` under a live worker
    that does not hold it (its claim's reply, or its end, went down with the old master). The
    worker, its connections dropped, looks at its own execution index once Redis answers and
    recovers the job at once, not a job timeout later when the started registry expires; with
    threads too (no claim of another thread is in flight while it looks)."""
    from webapp import create_app
    from webapp.worker.fastworker import FastWorker

    connection = redis_server.client()
    # a long idle wait: the worker itself does not claim the job pushed without a wake token
    worker = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1", WORKER_WAKE_TIMEOUT="60",
                                                      WORKER_THREADS=str(threads)))  # fmt: skip
    try:
        wait_until(lambda: len(children(connection)) == 1, 20, message="worker registered")
        (name,) = children(connection)
        # in its idle waits, every thread (its first claim, at start, would otherwise take the job)
        waiting = lambda: sum(client.get("cmd") == "blpop" for client in connection.client_list()) == threads  # noqa: E731
        wait_until(waiting, 20, message="the worker waits")
        job_id = enqueue(connection, "jobs.faults.record", timeout=600)  # the registry expires in 11 min
        # the claim made for it, with the reply going elsewhere: what a lost reply leaves
        app = create_app({"REDIS_URL": redis_server.url, "TESTING": True, "WORKER_ALLOWED_PREFIXES": ["jobs.faults."]})
        stand_in = FastWorker([Queue("default", connection=connection, serializer=JSONSerializer)],
                              connection=connection, app=app, name=name)  # fmt: skip
        _, claimed = stand_in._step(None, claim=True)
        stand_in.close_step_connections()
        assert claimed is not None and claimed[1].id == job_id
        assert status(connection, job_id) == "started"
        dropped_at = time.monotonic()
        connection.client_kill_filter(_type="normal", skipme=True)  # the worker's connections drop

        assert wait_status(connection, job_id, timeout=20) == "finished", worker.output()
        assert time.monotonic() - dropped_at < 15
        assert runs(connection, job_id) == 1, worker.output()  # the claim that was lost never ran it
        assert [kind for kind, _ in attempts(connection, job_id)] == ["RETRIED", "SUCCESSFUL"], worker.output()
        assert connection.smembers(keys.worker_executions(name)) == set()
        lost = [event for event in job_events(connection, job_id) if event["event"] == "abandoned"]
        assert len(lost) == 1 and lost[0]["error"]["type"] == "LostByRedis", lost
    finally:
        worker.stop()


def test_threads_whose_connections_keep_dropping_run_every_job_once(redis_server):
    """Four job threads drain while their connections are dropped again and again: claims whose
    reply is lost are recovered (and run once, as a retry), while the claims other threads have
    in flight at that moment are left alone (their replies do arrive): no job runs twice."""
    connection = redis_server.client()
    worker = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1", WORKER_THREADS="4"))
    try:
        wait_until(lambda: len(children(connection)) == 1, 20, message="worker registered")
        job_ids = [enqueue(connection, "jobs.faults.record", 0.01) for _ in range(300)]
        for _ in range(8):
            time.sleep(0.15)
            connection.client_kill_filter(_type="normal", skipme=True)
        wait_until(lambda: all(status(connection, job_id) == "finished" for job_id in job_ids), 60,
                   message="every job finished")  # fmt: skip
        counts = [runs(connection, job_id) for job_id in job_ids]
        assert max(counts) == 1 and min(counts) == 1, (sorted(counts)[-5:], worker.output()[-3000:])
    finally:
        worker.stop()


def test_after_a_restart_that_lost_redis_s_data_the_workers_register_again(redis_server):
    """A Redis restarted without persistence (or from an older snapshot) forgets the workers'
    registrations: they would work on unseen by RQ, rq-dashboard, /api/workers and /metrics
    for the rest of their lives. Their next heartbeat finds the hash gone and registers again."""
    from rq import Worker

    connection = redis_server.client()
    worker = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="1"))
    try:
        wait_until(lambda: len(children(connection)) == 1, 20, message="worker registered")
        (name,) = children(connection)
        # its start is over (RQ's bootstrap: a Redis away in it is retried there, a case of its own)
        wait_until(lambda: "Listening on" in worker.output(), 20, message="worker started")
        redis_server.kill()
        redis_server.start()  # no persistence: it comes back empty
        connection = redis_server.client()
        assert not connection.exists(keys.WORKERS)

        def registered() -> bool:
            found = {worker.name: worker for worker in Worker.all(connection=connection)}
            return name in found and found[name].queue_names() == ["high", "default", "low"]

        try:
            wait_until(registered, 20, message="the worker registered again")
        except AssertionError as failure:
            raise AssertionError(f"{failure}; the worker said:\n{worker.output()[-4000:]}") from None
        wait_until(lambda: connection.sismember(keys.SUPERVISED, name), 10, message="supervised again")
        job_id = enqueue(connection, "jobs.faults.record")
        assert wait_status(connection, job_id, timeout=20) == "finished"
        assert worker.output().count("registering it again") == 1, worker.output()
    finally:
        worker.stop()


def test_a_worker_whose_redis_is_away_as_it_registers_waits_and_registers_under_its_name():
    """Redis away in the moment a worker registers (RQ's bootstrap: its record, its command
    channel, state `started`) was an uncaught error: the process died with a traceback and was
    replaced under another name. The registration now waits for Redis, and keeps its name."""
    import threading

    from webapp import create_app
    from webapp.worker.fastworker import FastWorker

    server = RedisServer().start()
    try:
        app = create_app({"REDIS_URL": server.url, "TESTING": True})
        connection = server.client()
        queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in ("high", "default")]
        worker = FastWorker(queues, connection=connection, app=app, name="patient-1")
        server.kill()
        finished, errors = threading.Event(), []

        def register() -> None:
            try:
                worker.bootstrap("INFO")
            except Exception as exc:  # what the old code did: out of the process
                errors.append(exc)
            finally:
                finished.set()

        threading.Thread(target=register, daemon=True).start()
        time.sleep(1.5)
        assert not finished.is_set() and not errors, errors
        server.start()
        assert finished.wait(15) and not errors, errors
        check = server.client()
        assert check.sismember(keys.WORKERS, keys.WORKER_PREFIX + "patient-1")
        assert check.hget(keys.WORKER_PREFIX + "patient-1", "state") == b"started"
        worker.teardown()
        check.close()
    finally:
        server.cleanup()
