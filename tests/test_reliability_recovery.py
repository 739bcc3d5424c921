"""The reaper and the reconciler on a real Redis, driven step by step (no timing involved)."""

from __future__ import annotations

from rq import Queue, SimpleWorker
from rq.results import Result
from rq.serializers import JSONSerializer

from tests.faults.faultkit import enqueue, fetch, service_config, status
from webapp.store import keys
from webapp.worker.recovery import Recovery


def recovery(redis_server, redis_conn) -> Recovery:
    return Recovery(redis_conn, service_config(redis_server.url))


def start_on_ghost(redis_conn, job_id: str) -> None:
    """Do what a worker named `ghost` does up to running the job, then 'die' (stop here)."""
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    worker = SimpleWorker([queue], connection=redis_conn, name="ghost", serializer=JSONSerializer)
    job, _ = Queue.dequeue_any([queue], None, connection=redis_conn, serializer=JSONSerializer)
    assert job.id == job_id
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    redis_conn.sadd(keys.SUPERVISED, "ghost")  # a supervised worker with no liveness key: dead


def test_a_dead_workers_job_is_recovered_once_even_with_two_reapers(redis_server, redis_conn):
    job_id = enqueue(redis_conn, "jobs.faults.record")
    start_on_ghost(redis_conn, job_id)
    assert status(redis_conn, job_id) == "started"
    first, second = recovery(redis_server, redis_conn), recovery(redis_server, redis_conn)
    assert first.recover() == 1
    assert second.recover() == 0
    assert status(redis_conn, job_id) == "queued"
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    assert redis_conn.zcard("rq:wip:default") == 0
    job = fetch(redis_conn, job_id)
    assert job.retries_left == 0
    (result,) = job.results()
    assert result.type == Result.Type.RETRIED and "worker ghost lost heartbeat" in result.exc_string
    assert redis_conn.hget("jobsvc:metrics:recovery", "retried") == b"1"
    # The lock lets one pass run at a time.
    assert first.connection.set("jobsvc:reaper:lock", "someone-else", px=5000)
    assert second.run_pass() == 0


def test_out_of_retries_the_job_fails_with_the_reason(redis_server, redis_conn):
    job_id = enqueue(redis_conn, "jobs.faults.record", retries=0)
    start_on_ghost(redis_conn, job_id)
    assert recovery(redis_server, redis_conn).recover({"ghost": "worker ghost died (killed by signal 9, SIGKILL)"}) == 1
    job = fetch(redis_conn, job_id)
    assert job.get_status().value == "failed"
    assert job.meta["error"] == {"type": "WorkerDied", "message": "worker ghost died (killed by signal 9, SIGKILL)"}
    assert job_id in job.failed_job_registry


def test_the_reconciler_requeues_a_popped_job_on_its_second_sighting_only(redis_server, redis_conn):
    lost = enqueue(redis_conn, "jobs.faults.record")
    waiting = enqueue(redis_conn, "jobs.faults.record")
    assert redis_conn.lpop("rq:queue:default") == lost.encode()  # a worker popped it and died
    reaper = recovery(redis_server, redis_conn)
    reaper.reconcile(older_than=-1)
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [waiting.encode()]  # first sighting: wait
    reaper.reconcile(older_than=-1)
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [lost.encode(), waiting.encode()]
    reaper.reconcile(older_than=-1)
    reaper.reconcile(older_than=-1)
    assert redis_conn.llen("rq:queue:default") == 2  # never doubled
    assert redis_conn.hget("jobsvc:metrics:recovery", "orphan_requeued") == b"1"


def test_jobs_get_one_retry_by_default_and_fail_opts_out(client, redis_conn):
    added = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}).get_json()["id"]
    failing = client.post("/api/jobs", json={"name": "fail"}).get_json()["id"]
    assert fetch(redis_conn, added).retries_left == 1
    assert fetch(redis_conn, failing).retries_left is None
