"""Concurrency and rate limits per key: real Redis, real worker processes (README, "Limits per key")."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime

import pytest
from rq.job import Job, JobStatus
from rq.registry import DeferredJobRegistry
from rq.serializers import JSONSerializer

import jobs
from tests.faults.faultkit import fault_env, wait_until, worker_children
from tests.keyed import ADMIN_KEY, OTHER_KEY, OWNER_KEY, bearer, keyed_app
from tests.servers import start_worker
from webapp.service import limits as visibility
from webapp.service.access import OWNER, VIEWER, Principal
from webapp.service.catalog import build_catalog
from webapp.service.planning import Planner
from webapp.store import keys

TERMINAL = ("finished", "failed", "stopped", "canceled")


@pytest.fixture
def workers(redis_server, redis_conn):
    """Four worker processes, with quick recovery."""
    process = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="4"))
    wait_until(lambda: len(worker_children(redis_conn)) == 4, 30, message="four workers registered")
    yield process
    process.stop()


def submit_many(client, count: int, limit: dict | None, seconds: float = 0.0, **options) -> list[str]:
    """`count` sleep jobs through POST /api/jobs/batch (100 a request)."""
    ids: list[str] = []
    while len(ids) < count:
        body = {"name": "sleep", "args": [seconds], **options}
        if limit is not None:
            body["limit"] = limit
        batch = [body] * min(100, count - len(ids))
        response = client.post("/api/jobs/batch", json={"jobs": batch})
        assert response.status_code == 202, response.get_json()
        ids += [job["id"] for job in response.get_json()["jobs"]]
    return ids


def hashes(connection, ids: list[str]) -> list[dict[str, str]]:
    with connection.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(keys.job(job_id), "status", "started_at", "ended_at", "enqueued_at")
        replies = pipe.execute()
    names = ("status", "started_at", "ended_at", "enqueued_at")
    return [{name: (value or b"").decode() for name, value in zip(names, reply, strict=True)} for reply in replies]


def all_ended(connection, ids: list[str]) -> bool:
    return all(entry["status"] in TERMINAL for entry in hashes(connection, ids))


def moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in points:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "field"),
    [
        ({"key": "export"}, "limit"),  # neither concurrency nor rate
        ({"key": "a b", "concurrency": 1}, "limit.key"),
        ({"key": "x" * 101, "concurrency": 1}, "limit.key"),
        ({"key": "", "concurrency": 1}, "limit.key"),
        ({"key": "export", "concurrency": 0}, "limit.concurrency"),
        ({"key": "export", "concurrency": 1001}, "limit.concurrency"),
        ({"key": "export", "concurrency": "2"}, "limit.concurrency"),
        ({"key": "export", "rate": "0/second"}, "limit.rate"),
        ({"key": "export", "rate": "5/day"}, "limit.rate"),
        ({"key": "export", "rate": "10000/second"}, "limit.rate"),
        ({"key": "export", "concurrency": 1, "burst": 3}, "limit.burst"),
    ],
)
def test_invalid_limits_are_422_naming_the_field(client, redis_conn, limit, field):
    response = client.post("/api/jobs", json={"name": "add", "args": [1, 2], "limit": limit})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert field in {detail["argument"] for detail in error["details"]}, error
    assert redis_conn.keys("rq:job:*") == []


def test_a_limit_is_kept_on_the_job_and_shown(client, redis_conn):
    response = client.post(
        "/api/jobs",
        json={"name": "add", "args": [1, 2], "limit": {"key": "export", "concurrency": 2, "rate": "5/minute"}},
    )
    assert response.status_code == 202
    view = client.get(f"/api/jobs/{response.get_json()['id']}").get_json()
    assert view["limit"] == {"key": "export", "concurrency": 2, "rate": "5/minute"}
    assert view["waiting_for"] is None
    plain = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}).get_json()["id"]
    assert client.get(f"/api/jobs/{plain}").get_json()["limit"] is None


def test_a_job_type_default_limit_applies_unless_the_submission_says_otherwise(app):
    catalog = build_catalog(jobs.ALLOWED, {"sleep": {"limit": {"key": "sleepers", "concurrency": 2}}})
    planner = Planner(catalog, app.extensions["jobsvc"].queues, app.config)
    plain = planner.plan(planner.request({"name": "sleep", "args": [0]}))
    assert plain.limit == {"key": "sleepers", "concurrency": 2} and not plain.limit_own
    own = planner.plan(planner.request({"name": "sleep", "args": [0], "limit": {"key": "mine", "rate": "2/hour"}}))
    assert own.limit == {"key": "mine", "rate": 2, "per": 3600} and own.limit_own
    assert planner.plan(planner.request({"name": "sleep", "args": [0], "limit": None})).limit is None
    with pytest.raises(TypeError, match="invalid default limit"):
        build_catalog(jobs.ALLOWED, {"sleep": {"limit": {"key": "sleepers"}}})
    with pytest.raises(TypeError, match="invalid default limit"):
        build_catalog(jobs.ALLOWED, {"sleep": {"limit": {"key": "no spaces", "concurrency": 1}}})


# -- with worker processes -------------------------------------------------------------------


def test_never_more_than_concurrency_at_once_and_parked_jobs_read_as_deferred(client, redis_conn, workers):
    ids = submit_many(client, 12, {"key": "pair", "concurrency": 2}, seconds=0.3)
    seen_parked = None
    peak_running = 0
    deadline = time.monotonic() + 60
    while not all_ended(redis_conn, ids):
        assert time.monotonic() < deadline, "the jobs did not end within 60 s"
        entries = hashes(redis_conn, ids)
        running = sum(entry["status"] == "started" for entry in entries)
        assert running <= 2, entries
        peak_running = max(peak_running, running)
        if seen_parked is None:
            parked = [job_id for job_id, entry in zip(ids, entries, strict=True) if entry["status"] == "deferred"]
            if parked:
                seen_parked = parked[-1]
                view = client.get(f"/api/jobs/{seen_parked}").get_json()
                assert view["status"] in ("deferred", "queued", "started", "finished")
                if view["status"] == "deferred":
                    assert view["waiting_for"] == "limit"
                job = Job.fetch(seen_parked, connection=redis_conn, serializer=JSONSerializer)  # RQ's own API
                assert job.get_status() in (JobStatus.DEFERRED, JobStatus.QUEUED, JobStatus.STARTED, JobStatus.FINISHED)
                registry = DeferredJobRegistry("default", connection=redis_conn, serializer=JSONSerializer)
                assert job.get_status(refresh=False) != JobStatus.DEFERRED or seen_parked in registry.get_job_ids()
        time.sleep(0.02)
    entries = hashes(redis_conn, ids)
    assert [entry["status"] for entry in entries] == ["finished"] * 12
    intervals = [(moment(entry["started_at"]), moment(entry["ended_at"])) for entry in entries]
    assert most_at_once(intervals) == 2  # never more than 2, and 2 did run together with 4 workers
    assert seen_parked is not None, "no job was ever seen parked"
    assert redis_conn.zcard(keys.LIMIT_KEYS) == 0  # the key leaves the index once idle
    assert client.get("/api/limits").get_json() == {"limits": []}


def test_rate_spaces_the_starts(client, redis_conn, workers):
    plain = submit_many(client, 3, None)
    wait_until(lambda: all_ended(redis_conn, plain), 10, message="three jobs without a limit ended")
    assert redis_conn.keys("jobsvc:limit:*") == []  # jobs without a limit never touch the limits' keys
    ids = submit_many(client, 15, {"key": "paced", "rate": "5/second"})
    wait_until(lambda: all_ended(redis_conn, ids), 30, message="15 rate-limited jobs ended")
    starts = sorted(moment(entry["started_at"]) for entry in hashes(redis_conn, ids))
    gaps = [later - earlier for earlier, later in zip(starts, starts[5:], strict=False)]
    assert min(gaps) >= 1.0 - 0.002, gaps  # no 6 starts within one second (µs rounding of the text)
    # ... and parked jobs are woken when their window admits them, not seconds late
    assert starts[-1] - starts[0] < 3.5, starts[-1] - starts[0]


def test_an_unrelated_job_is_not_held_behind_500_jobs_of_a_saturated_key(client, redis_conn, workers):
    saturated = submit_many(client, 500, {"key": "busy", "concurrency": 1}, seconds=2)
    other = client.post("/api/jobs", json={"name": "add", "args": [1, 2]}).get_json()["id"]
    other_keyed = client.post(
        "/api/jobs", json={"name": "add", "args": [2, 3], "limit": {"key": "free", "concurrency": 1}}
    ).get_json()["id"]
    wait_until(lambda: all_ended(redis_conn, [other, other_keyed]), 10, message="the unrelated jobs ended")
    for entry in hashes(redis_conn, [other, other_keyed]):
        assert entry["status"] == "finished"
        assert moment(entry["ended_at"]) - moment(entry["enqueued_at"]) < 1.0
    assert sum(entry["status"] == "started" for entry in hashes(redis_conn, saturated)) <= 1
    figures = {view["key"]: view for view in client.get("/api/limits").get_json()["limits"]}
    assert figures["busy"]["running"] <= 1 and figures["busy"]["waiting"] >= 490
    assert figures["busy"]["concurrency"] == 1
    parked = saturated[-1]
    assert redis_conn.hget(keys.job(parked), "status") == b"deferred"
    assert client.post(f"/api/jobs/{parked}/cancel").status_code == 200  # cancelable like any deferred job
    assert client.get(f"/api/jobs/{parked}").get_json()["status"] == "canceled"
    registry = DeferredJobRegistry("default", connection=redis_conn, serializer=JSONSerializer)
    assert parked not in registry.get_job_ids()
    assert parked.encode() not in redis_conn.lrange(keys.limit_parked("busy"), 0, -1)
    assert client.delete(f"/api/jobs/{saturated[-2]}").status_code == 204
    assert saturated[-2].encode() not in redis_conn.lrange(keys.limit_parked("busy"), 0, -1)
    after = {view["key"]: view for view in client.get("/api/limits").get_json()["limits"]}
    assert after["busy"]["waiting"] <= figures["busy"]["waiting"] - 2


def test_a_killed_worker_gives_its_slot_back(client, redis_conn, workers):
    limit = {"key": "solo", "concurrency": 1}
    holder = client.post(
        "/api/jobs", json={"name": "sleep", "args": [60], "limit": limit, "retry": {"max": 0}}
    ).get_json()["id"]
    wait_until(lambda: redis_conn.hget(keys.job(holder), "status") == b"started", 20, message="holder started")
    follower = client.post("/api/jobs", json={"name": "sleep", "args": [0], "limit": limit}).get_json()["id"]
    wait_until(lambda: redis_conn.hget(keys.job(follower), "status") == b"deferred", 10, message="follower parked")
    assert client.get(f"/api/jobs/{follower}").get_json()["waiting_for"] == "limit"
    name = redis_conn.hget(keys.job(holder), "worker_name").decode()
    os.kill(worker_children(redis_conn)[name], signal.SIGKILL)
    wait_until(lambda: redis_conn.hget(keys.job(follower), "status") == b"finished", 20, message="follower ran")
    assert redis_conn.hget(keys.job(holder), "status") == b"failed"
    assert redis_conn.zcard(keys.limit_running("solo")) == 0  # no leaked slot
    again = client.post("/api/jobs", json={"name": "sleep", "args": [0], "limit": limit}).get_json()["id"]
    wait_until(lambda: redis_conn.hget(keys.job(again), "status") == b"finished", 10, message="the key admits again")


def test_limits_figures_and_who_sees_which_key(redis_server, redis_conn):
    app = keyed_app(redis_server.url)
    client = app.test_client()
    worker = start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="2"))
    try:
        wait_until(lambda: len(worker_children(redis_conn)) == 2, 30, message="workers registered")
        body = {"name": "sleep", "args": [1.5], "limit": {"key": "exports", "concurrency": 1, "rate": "10/minute"}}
        ids = [client.post("/api/jobs", json=body, headers=bearer(OWNER_KEY)).get_json()["id"] for _ in range(3)]

        def figures(key: str) -> list[dict]:
            return client.get("/api/limits", headers=bearer(key)).get_json()["limits"]

        wait_until(lambda: [view["waiting"] for view in figures(OWNER_KEY)] == [2], 10, message="two parked")
        [view] = figures(OWNER_KEY)
        assert view["key"] == "alice/exports"  # a submitted key belongs to the submitting API key
        assert (view["running"], view["concurrency"], view["rate"]) == (1, 1, "10/minute")
        assert [view["key"] for view in figures(ADMIN_KEY)] == ["alice/exports"]
        assert figures(OTHER_KEY) == []  # bob does not see alice's keys
        wait_until(lambda: all_ended(redis_conn, ids), 20, message="the three jobs ended")
    finally:
        worker.stop()


def test_a_failed_or_stopped_job_gives_its_slot_back(client, redis_conn, workers):
    limit = {"key": "ends", "concurrency": 1}
    failing = client.post("/api/jobs", json={"name": "fail", "limit": limit}).get_json()["id"]
    after_failure = client.post("/api/jobs", json={"name": "add", "args": [1, 1], "limit": limit}).get_json()["id"]
    wait_until(lambda: all_ended(redis_conn, [failing, after_failure]), 10, message="both jobs ended")
    assert [entry["status"] for entry in hashes(redis_conn, [failing, after_failure])] == ["failed", "finished"]

    running = client.post("/api/jobs", json={"name": "sleep", "args": [60], "limit": limit}).get_json()["id"]
    wait_until(lambda: redis_conn.hget(keys.job(running), "status") == b"started", 10, message="started")
    waiting = client.post("/api/jobs", json={"name": "add", "args": [2, 2], "limit": limit}).get_json()["id"]
    wait_until(lambda: redis_conn.hget(keys.job(waiting), "status") == b"deferred", 10, message="parked")
    assert client.post(f"/api/jobs/{running}/cancel").status_code == 202  # a stop, on a running job
    wait_until(lambda: all_ended(redis_conn, [running, waiting]), 10, message="stopped, then the next ran")
    assert [entry["status"] for entry in hashes(redis_conn, [running, waiting])] == ["stopped", "finished"]
    assert redis_conn.zcard(keys.limit_running("ends")) == 0


def test_owner_keys_see_their_own_keys_and_the_job_types_shared_ones(redis_conn):
    catalog = build_catalog(jobs.ALLOWED, {"sleep": {"limit": {"key": "sleepers", "concurrency": 2}}})
    for key in ("sleepers", "alice/exports", "bob/exports"):  # as the claim records active keys
        redis_conn.zadd(keys.LIMIT_KEYS, {key: time.time()})
        redis_conn.hset(keys.LIMIT_SPECS, key, "2 0 0")
    alice = Principal(name="alice", role=OWNER)
    assert [view["key"] for view in visibility.visible(redis_conn, alice, catalog)] == ["alice/exports", "sleepers"]
    assert len(visibility.visible(redis_conn, None, catalog)) == 3
    assert len(visibility.visible(redis_conn, Principal(name="watch", role=VIEWER), catalog)) == 3
