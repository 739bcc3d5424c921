"""The submit path writes RQ's job hash itself (webapp.jobrecord): it must be RQ's, field for field.

Each case enqueues the same call twice on the pinned RQ, once through `Queue.enqueue_call` and
once as the submit script's `JOB` command (`queued_job`, run by lua/lib/queued_job.lua), and
compares every key written, every field and every TTL. An RQ upgrade that adds, renames or
reformats a field fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rq import Queue, Retry, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from webapp.store import jobrecord, keys
from webapp.store.admission import Admission, GuardedWriter

STAMPED = {b"created_at", b"enqueued_at"}
CASES = {
    "defaults": {},
    "every option": {
        "timeout": 30,
        "result_ttl": 60,
        "failure_ttl": 120,
        "ttl": 600,
        "description": "two plus three",
        "retry": Retry(max=3, interval=[1, 5]),
    },
    "retry at front, no TTLs": {"retry": Retry(max=1, enqueue_at_front=True), "result_ttl": None},
    "timeout unset": {"timeout": None},
}


def _enqueue_as_the_service(redis_conn, job_command: tuple) -> None:
    """The JOB command through the submit script, as a submission sends it (no checks)."""
    assert GuardedWriter(redis_conn).run([job_command], Admission()).status == "ok"


def _written(redis_conn, job_id: str) -> tuple[dict, dict]:
    keys = {
        key.decode().replace(job_id, "<id>"): (redis_conn.type(key), redis_conn.ttl(key) > 0)
        for key in redis_conn.keys("*")
    }
    fields = redis_conn.hgetall(Job.key_for(job_id))
    return keys, fields


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("meta", [{"name": "add"}, {"name": "add", "owner": "alice"}])
def test_job_hash_is_rqs_own(redis_conn, case, meta):
    options = {"timeout": 180, "result_ttl": 86400, "failure_ttl": 604800, "ttl": None, "description": None}
    options.update(CASES[case])
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer, default_timeout=77)

    rq_job = queue.enqueue_call(func="jobs.basic.add", kwargs={"a": 2, "b": 3}, meta=dict(meta), **options)
    rq_keys, rq_fields = _written(redis_conn, rq_job.id)
    redis_conn.flushall()

    job_id = "0d2c4f1e-6a4b-4d1f-9e53-0a9c3b1f2e77"
    now = datetime.now(UTC)
    _enqueue_as_the_service(
        redis_conn, jobrecord.queued_job(job_id, "jobs.basic.add", {"a": 2, "b": 3}, meta, "default", options, 77, now)
    )
    our_keys, our_fields = _written(redis_conn, job_id)

    # and one thing RQ does not write: the token that wakes an idle worker of the queue
    assert our_keys.pop(keys.wake("default")) == (b"list", False)
    assert redis_conn.lrange(keys.wake("default"), 0, -1) == [b"1"]
    assert our_keys == rq_keys
    assert sorted(our_fields) == sorted(rq_fields)
    for field in rq_fields:
        if field in STAMPED:
            assert our_fields[field] == now.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
        else:
            assert our_fields[field] == rq_fields[field], field
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [job_id.encode()]


def test_rq_reads_and_runs_the_job(redis_conn):
    """RQ's own API and worker take a directly written job as one of theirs."""
    options = {"timeout": 30, "result_ttl": 60, "failure_ttl": 60, "ttl": None, "description": None}
    job_id = "5b0f8a1c-3c1d-4f7a-8f0e-2d6b9a4c1e00"
    _enqueue_as_the_service(
        redis_conn,
        jobrecord.queued_job(job_id, "jobs.basic.add", {"a": 40, "b": 2}, {"name": "add"}, "default", options, 180),
    )
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert (job.func_name, job.kwargs, job.meta, job.get_status()) == (
        "jobs.basic.add",
        {"a": 40, "b": 2},
        {"name": "add"},
        "queued",
    )
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    assert queue.job_ids == [job_id]
    SimpleWorker([queue], connection=redis_conn, serializer=JSONSerializer).work(burst=True)
    assert job.return_value(refresh=True) == 42


def test_reading_a_job_back_gives_what_rqs_own_restore_gives(redis_conn):
    """The read path parses the job's dates itself (RQ's strptime was a tenth of a read's CPU):
    every attribute must equal what RQ's `Job.fetch` gives, for a job RQ enqueued and ran."""
    from webapp.store import jobreads

    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue_call("jobs.basic.add", kwargs={"a": 1, "b": 2}, meta={"name": "add"}, result_ttl=60)
    SimpleWorker([queue], connection=redis_conn, serializer=JSONSerializer).work(burst=True)
    fetched = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    restored = jobreads.restore(job.id, redis_conn.hgetall(job.key), redis_conn)
    for attribute in ("created_at", "enqueued_at", "started_at", "ended_at", "last_heartbeat"):
        assert getattr(restored, attribute) == getattr(fetched, attribute), attribute
        assert getattr(restored, attribute).tzinfo == UTC, attribute
    assert (restored.get_status(refresh=False), restored.kwargs, restored.meta, restored.serializer) == (
        fetched.get_status(refresh=False), fetched.kwargs, fetched.meta, JSONSerializer
    )  # fmt: skip
    assert restored.return_value(refresh=True) == 3


def test_a_date_in_another_format_falls_back_to_rqs_parser():
    from webapp.store.jobreads import parse_date

    assert parse_date(b"2026-11-26T20:35:20Z") == datetime(2026, 11, 26, 20, 35, 20, tzinfo=UTC)
    assert parse_date(b"2026-11-26T20:35:20.000001Z").microsecond == 1
    with pytest.raises(ValueError):
        parse_date(b"yesterday")


READ_CASES = {
    "finished": ("jobs.basic.add", {"a": 1, "b": 2}, {"meta": {"name": "add", "owner": "alice"}, "result_ttl": 60}),
    "failed, retries left": ("jobs.basic.fail", {"message": "no"}, {"retry": Retry(max=2, interval=[30, 60])}),
    "failed for good": ("jobs.basic.fail", {"message": "twice no"}, {"meta": {"name": "fail"}, "failure_ttl": 60}),
    "queued, no name": ("jobs.basic.add", {"a": 5, "b": 6}, {"description": "five plus six"}),
}


@pytest.mark.parametrize("case", READ_CASES)
def test_a_snapshot_reads_what_rqs_job_and_results_read(redis_conn, case):
    """The read routes decode the job hash and its result stream themselves (RQ's Job and Result
    restores were half of a read's CPU): each field the views use must equal what RQ's own
    `Job.fetch` and `job.results()` give, for jobs RQ enqueued and ran."""
    from webapp.store import jobreads

    path, kwargs, options = READ_CASES[case]
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue_call(path, kwargs=kwargs, **options)
    if case != "queued, no name":
        SimpleWorker([queue], connection=redis_conn, serializer=JSONSerializer).work(burst=True)
    fetched = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    snapshot, results, _ = jobreads.read(redis_conn, job.id, results=None)
    assert snapshot.status == fetched.get_status(refresh=False).value
    for attribute in ("origin", "description", "meta", "enqueued_at", "started_at", "ended_at", "retries_left",
                      "retry_intervals", "func_name"):  # fmt: skip
        assert getattr(snapshot, attribute) == getattr(fetched, attribute), attribute
    assert snapshot.exc_info == fetched._exc_info
    expected = fetched.results()
    assert len(results) == len(expected) == (1 if case in ("finished", "failed for good") else 0)
    for entry, rqs in zip(results, expected, strict=True):
        for attribute in ("type", "return_value", "exc_string", "worker_name", "created_at", "execution_started_at",
                          "execution_ended_at"):  # fmt: skip
            assert getattr(entry, attribute) == getattr(rqs, attribute), attribute
    if case == "finished":
        assert results[0].return_value == 3 and snapshot.meta["owner"] == "alice"
    if case == "failed for good":
        assert "twice no" in results[0].exc_string and results[0].type.name == "FAILED"
    if case == "failed, retries left":  # RQ records the try in the job hash, not as a result
        assert (snapshot.retries_left, snapshot.retry_intervals, snapshot.status) == (1, [30, 60], "scheduled")
    view = jobreads.to_dict(snapshot, results[0] if results else None, None, {"jobs.basic.add": "add"})
    assert view["name"] == {"queued, no name": "add", "failed, retries left": "jobs.basic.fail"}.get(case, view["name"])


def test_a_snapshot_of_an_unreadable_hash_still_reads():
    """A meta that is not JSON, and an uncompressed payload and traceback, read as RQ's fallbacks do."""
    from webapp.store import jobreads

    raw = {b"status": b"failed", b"meta": b"\x80garbage", b"data": b'["jobs.basic.add", null, [1, 2], {}]',
           b"exc_info": b"Traceback ...\nValueError: plain"}  # fmt: skip
    snapshot = jobreads.snapshot("abc", raw)
    assert (snapshot.meta, snapshot.func_name, snapshot.exc_info) == ({}, "jobs.basic.add", raw[b"exc_info"].decode())
    assert jobreads.to_dict(snapshot, None, None, {})["error"] == {"type": "ValueError", "message": "plain"}


def test_a_result_another_serializer_wrote_reads_as_rqs_placeholder(redis_conn):
    """Plain RQ code with its default (pickle) serializer may write results the JSON reader cannot
    decode: the view shows RQ's own placeholder for the value, the traceback as text, and no 500."""
    import pickle
    from base64 import b64encode

    from webapp.store import jobreads

    pickled = b64encode(pickle.dumps({"a": 1}))
    entry = jobreads.result_entry(b"1764190520123-0", {b"type": b"1", b"return_value": pickled})
    assert entry.return_value == "Unserializable return value"
    assert entry.created_at == datetime(2025, 11, 26, 20, 55, 20, 123000, tzinfo=UTC)
    failed = jobreads.result_entry(b"1-0", {b"type": b"2", b"exc_string": b"not base64 at all!"})
    assert failed.exc_string == "not base64 at all!"
