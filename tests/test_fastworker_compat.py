"""The fast worker against the pinned RQ: the keys and fields it writes are RQ's own.

If an RQ upgrade renames a key, adds a field its readers need or changes a registry's
entry format, these fail before any job is misread in production.
"""

from __future__ import annotations

import re

import pytest
from rq import Queue, SimpleWorker
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from webapp.store import keys
from webapp.worker.fastworker import FastWorker

UUID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_rq_key_formats_are_the_ones_the_scripts_build(redis_conn):
    assert keys.JOB_PREFIX == "rq:job:" and Job.key_for("j") == keys.job("j") == "rq:job:j"
    job = Job.create(func="jobs.basic.add", args=(1, 2), id="j", connection=redis_conn, serializer=JSONSerializer)
    assert job.dependents_key == keys.dependents("j") == "rq:job:j:dependents"
    assert job.dependents_key == keys.LUA_NAMES["JOB_PREFIX"] + "j" + keys.LUA_NAMES["DEPENDENTS_SUFFIX"]
    # RQ 3.0 doubles the colon here; STEP uses whatever RQ uses
    assert job.dependencies_key == keys.dependencies("j")
    assert job.dependencies_key == keys.LUA_NAMES["DEPENDENCIES_PREFIX"] + "j:dependencies"
    assert Result.get_key("j") == keys.results("j") == keys.LUA_NAMES["RESULTS_PREFIX"] + "j" == "rq:results:j"
    assert StartedJobRegistry("q", connection=redis_conn).key == keys.LUA_NAMES["STARTED_PREFIX"] + "q" == "rq:wip:q"
    assert FinishedJobRegistry("q", connection=redis_conn).key == keys.LUA_NAMES["FINISHED_PREFIX"] + "q"
    assert ExecutionRegistry("j", connection=redis_conn).key == keys.executions("j")
    execution = Execution("e", "j", connection=redis_conn, worker_name="w")
    assert execution.key == keys.execution("j", "e") == "rq:execution:j:e"
    assert execution.composite_key == "j:e"
    assert execution.worker_executions_key == keys.worker_executions("w") == "rq:worker:w:executions"
    assert set(execution.serialize()) == {"id", "job_id", "created_at", "last_heartbeat", "worker_name"}
    assert StartedJobRegistry.parse_job_id("j:e") == "j"
    assert Result.Type.SUCCESSFUL.value == 1
    for state, registry in keys.REGISTRIES.items():
        assert keys.registry(state, "q") == registry("q", connection=redis_conn).key


def nothing() -> None:
    """A job without a return value."""


def snapshot(redis_conn, job: Job, queue: str) -> dict:
    """What a run left in Redis, with ids replaced so two runs compare."""
    written = {UUID.sub("<id>", key.decode()) for key in redis_conn.keys("rq:*")}
    written = {key for key in written if not key.startswith("rq:worker")}
    (entry,) = [fields for _, fields in redis_conn.xrange(Result.get_key(job.id))]
    return {
        "keys": written,
        "job_fields": set(redis_conn.hkeys(job.key)),
        "result_fields": set(entry),
        "status": redis_conn.hget(job.key, "status"),
        "job_ttl_set": redis_conn.ttl(job.key) > 0,
        "result_ttl_set": redis_conn.ttl(Result.get_key(job.id)) > 0,
        "finished_registry": redis_conn.zrange(FinishedJobRegistry(queue, connection=redis_conn).key, 0, -1),
        "started_registry": redis_conn.zrange(keys.registry("started", queue), 0, -1),
    }


@pytest.mark.parametrize("with_return_value", [True, False])
def test_a_job_run_by_fastworker_looks_like_one_run_by_rqs_simpleworker(app, redis_conn, with_return_value):
    func, args = ("jobs.basic.add", (2, 3)) if with_return_value else ("tests.test_fastworker_compat.nothing", ())
    # a queue of its own: no other worker on this Redis can take the job
    queue = Queue("compat", connection=redis_conn, serializer=JSONSerializer)
    app.config["WORKER_ALLOWED_PREFIXES"] = ["tests.test_fastworker_compat."]  # `nothing`, enqueued by plain RQ
    views = []
    for worker_class in (SimpleWorker, FastWorker):
        redis_conn.flushall()
        job = queue.enqueue_call(func=func, args=args, job_id="the-job", result_ttl=600, meta={"name": "x"})
        options = {"app": app} if worker_class is FastWorker else {}
        worker_class([queue], connection=redis_conn, serializer=JSONSerializer, **options).work(burst=True)
        view = snapshot(redis_conn, job, queue.name)
        view["finished_registry"] = [entry.decode() for entry in view["finished_registry"]]
        view["return_value"] = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer).return_value()
        views.append(view)
    rq_view, fast_view = views
    assert rq_view["status"] == fast_view["status"] == b"finished"
    assert fast_view["return_value"] == rq_view["return_value"]
    assert fast_view["result_fields"] == rq_view["result_fields"]
    assert fast_view["job_fields"] >= rq_view["job_fields"], rq_view["job_fields"] - fast_view["job_fields"]
    assert fast_view["keys"] == rq_view["keys"], (fast_view, rq_view)
    for name in ("job_ttl_set", "result_ttl_set", "finished_registry", "started_registry"):
        assert fast_view[name] == rq_view[name], (name, fast_view, rq_view)
