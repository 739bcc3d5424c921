"""Periodic schedules against a real Redis: the API contract, ticks driven by a controllable
clock (the ticker's `now` is an argument), exactly one job per tick under racing tickers,
pause/resume, run-now, no_overlap, both misfire policies, ownership, events and metrics."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from webapp import create_app
from webapp.store import keys

ADD = {"name": "add", "args": [1, 2]}


def service_of(app):
    return app.extensions["jobsvc_schedules"]


def create(client, name="every-minute", **fields):
    body = {"name": name, "job": ADD, **({"interval": 60} if "cron" not in fields else {}), **fields}
    response = client.post("/api/schedules", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def stored(app, name):
    return service_of(app).store.read(name)


def tick_at(app, name, now_ms):
    """What a ticker does at `now_ms` for schedule `name` (the clock is the test's)."""
    return service_of(app).tick(stored(app, name), now_ms)


def jobs_of(redis_conn, name) -> list[dict]:
    ids = [member.decode() for member in redis_conn.zrange(keys.index_by_schedule(name), 0, -1)]
    return [json.loads(redis_conn.hget(keys.job(job_id), "meta")) | {"id": job_id} for job_id in ids]


def schedule_events(redis_conn) -> list[dict]:
    return [json.loads(fields[b"data"]) for _, fields in redis_conn.xrange(keys.SCHEDULE_EVENTS_STREAM)]


def test_the_api_contract_with_its_statuses(client):
    created = client.post("/api/schedules", json={"name": "nightly", "job": ADD, "cron": "0 2 * * *"})
    assert created.status_code == 201 and created.headers["Location"] == "/api/schedules/nightly"
    view = created.get_json()
    assert view["next_run_at"].endswith("T02:00:00.000Z") and view["runs"] == [] and view["misfire"] == "run_once"
    assert client.post("/api/schedules", json={"name": "nightly", "job": ADD, "interval": 5}).status_code == 409
    assert client.get("/api/schedules/nightly").get_json() == view
    assert [s["name"] for s in client.get("/api/schedules").get_json()["schedules"]] == ["nightly"]
    patched = client.patch("/api/schedules/nightly", json={"paused": True})
    assert patched.status_code == 200 and patched.get_json()["paused"] is True
    assert patched.get_json()["next_run_at"] is None
    run = client.post("/api/schedules/nightly/run", json={})
    assert run.status_code == 202 and run.get_json()["schedule"] == "nightly"
    assert run.headers["Location"] == f"/api/jobs/{run.get_json()['id']}"
    assert client.get("/api/schedules/nightly").get_json()["runs"][0]["job_id"] == run.get_json()["id"]
    assert client.delete("/api/schedules/nightly").status_code == 204
    for method, path in (("get", ""), ("patch", ""), ("delete", ""), ("post", "/run")):
        kwargs = {"json": {}} if method in ("patch", "post") else {}
        assert getattr(client, method)(f"/api/schedules/nightly{path}", **kwargs).status_code == 404


@pytest.mark.parametrize(
    ("body", "argument", "says"),
    [
        ({"cron": "0 25 * * *"}, "cron", "should be a cron expression"),
        ({"cron": "0 2 * *"}, "cron", "5 fields one space apart"),
        ({"cron": "0 2 * * *", "timezone": "Europe/Pariss"}, "timezone", "unknown time zone 'Europe/Pariss'"),
        ({"cron": "0 2 * * *", "interval": 5}, "cron", "not both"),
        ({}, "cron", "give cron"),
        ({"interval": 0}, "interval", "greater than or equal to 1"),
        ({"cron": "0 2 * * *", "jitter": 10}, None, "jitter: applies to interval schedules only"),
        ({"interval": 10, "misfire": "burst"}, "misfire", "run_once"),
        ({"interval": 10, "job": {"name": "add", "args": ["x", 2]}}, "job.a", "valid integer"),
        ({"interval": 10, "job": {"name": "nope"}}, "job.name", "unknown job name"),
        ({"interval": 10, "job": {"name": "add", "args": [1, 2], "timeout": 10**6}}, "job.timeout", "at most"),
        ({"interval": 10, "job": {"name": "add", "args": [1, 2], "enqueue_in": 5}}, "job.enqueue_in", "unknown"),
        ({"interval": 10, "name": "no spaces"}, "name", "should be a schedule name"),
    ],
)
def test_a_bad_schedule_is_a_422_naming_what_is_wrong(client, body, argument, says):
    response = client.post("/api/schedules", json={"name": "bad", "job": ADD, **body})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert says in error["message"]
    if argument:
        assert argument in [detail["argument"] for detail in error["details"]]
    assert client.get("/api/schedules").get_json()["schedules"] == []


def test_malformed_or_undeclared_bodies(client):
    raw = client.post("/api/schedules", data="{", content_type="application/json")
    assert raw.status_code == 400
    assert client.post("/api/schedules", data="{}", content_type="text/plain").status_code == 415
    assert client.post("/api/schedules", json=[1]).status_code == 422
    create(client, "s1")
    assert client.patch("/api/schedules/s1", json={"color": "red"}).status_code == 422
    assert client.patch("/api/schedules/s1", json={"timezone": "Nowhere/Land", "cron": "0 1 * * *"}).status_code == 422
    assert client.get("/api/schedules/s1").get_json()["interval"] == 60  # unchanged


def test_a_cron_tick_with_a_controllable_clock_enqueues_one_ordinary_job(app, client, redis_conn):
    create(client, "nightly", cron="30 2 * * *", timezone="Europe/Paris")
    paris = ZoneInfo("Europe/Paris")
    due = int(datetime(2030, 1, 1, 2, 30, tzinfo=paris).timestamp() * 1000)
    service_of(app).store.connection.hset(keys.schedule("nightly"), mapping={"next_due": due, "next_run": due})
    assert tick_at(app, "nightly", due - 1) == "early"
    assert tick_at(app, "nightly", due + 250) == "tick"
    view = client.get("/api/schedules/nightly").get_json()
    assert view["next_run_at"] == "2030-01-02T01:30:00.000Z"  # 02:30 in Paris, the next day
    [run] = view["runs"]
    assert (run["due_at"], run["kind"], run["status"]) == ("2030-01-01T01:30:00.000Z", "tick", "queued")
    job = client.get(f"/api/jobs/{run['job_id']}").get_json()
    assert job["name"] == "add" and job["status"] == "queued" and job["schedule"] == "nightly"
    events = [json.loads(f[b"data"]) for _, f in redis_conn.xrange(keys.job_events(run["job_id"]))]
    assert [(e["event"], e["schedule"]) for e in events] == [("queued", "nightly")]
    assert redis_conn.lrange(keys.queue("default"), 0, -1) == [run["job_id"].encode()]
    listed = client.get("/api/jobs?schedule=nightly").get_json()["jobs"]
    assert [j["id"] for j in listed] == [run["job_id"]]
    assert client.get("/api/jobs?schedule=other").get_json()["jobs"] == []
    assert client.get("/api/jobs?schedule=a%20b").status_code == 422
    run_event = [e for e in schedule_events(redis_conn) if e["event"] == "schedule.run"]
    assert run_event[0]["job_id"] == run["job_id"] and run_event[0]["lag_seconds"] == 0.25
    # the global job stream holds job events only: /api/events consumers never meet a schedule event
    global_events = [json.loads(f[b"data"]) for _, f in redis_conn.xrange(keys.EVENTS_STREAM)]
    assert all("job_id" in event and not event["event"].startswith("schedule.") for event in global_events)


def test_racing_tickers_enqueue_each_tick_exactly_once(app, client, redis_conn):
    create(client, "raced", interval=1)
    service = service_of(app)
    for _ in range(5):
        snapshot = stored(app, "raced")
        now = snapshot.next_run + 10
        outcomes: list[str] = []
        barrier = threading.Barrier(8)

        def ticker(snapshot=snapshot, now=now, outcomes=outcomes, barrier=barrier):
            barrier.wait()
            outcomes.append(service.tick(snapshot, now))

        threads = [threading.Thread(target=ticker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["stale"] * 7 + ["tick"]
    dues = [run["due_at"] for run in client.get("/api/schedules/raced").get_json()["runs"]]
    assert len(dues) == len(set(dues)) == 5 and len(jobs_of(redis_conn, "raced")) == 5


def test_pause_stops_the_ticks_and_resume_restarts_from_now(app, client, redis_conn):
    create(client, "paused-one", interval=1)
    service = service_of(app)
    client.patch("/api/schedules/paused-one", json={"paused": True})
    far = service.store.now_ms() + 3_600_000
    assert service.tick_due(far)[0] == {} and tick_at(app, "paused-one", far) == "early"
    assert jobs_of(redis_conn, "paused-one") == []
    before = service.store.now_ms()
    resumed = client.patch("/api/schedules/paused-one", json={"paused": False}).get_json()
    next_run = datetime.fromisoformat(resumed["next_run_at"].replace("Z", "+00:00")).timestamp() * 1000
    assert before < next_run <= service.store.now_ms() + 1000  # the first tick after now, no catch-up
    assert tick_at(app, "paused-one", int(next_run) + 5) == "tick"
    names = [e["event"] for e in schedule_events(redis_conn)]
    assert names == ["schedule.created", "schedule.paused", "schedule.resumed", "schedule.run"]


def test_run_now_runs_a_paused_schedule_once_and_keeps_its_ticks(app, client, redis_conn):
    create(client, "manual", interval=3600, paused=True)
    before = stored(app, "manual")
    started = client.post("/api/schedules/manual/run", json={}).get_json()
    after = stored(app, "manual")
    assert (after.next_due, after.paused) == (before.next_due, True)
    assert [job["id"] for job in jobs_of(redis_conn, "manual")] == [started["id"]]
    assert client.get("/api/schedules/manual").get_json()["runs"][0]["kind"] == "manual"


def test_no_overlap_skips_a_tick_while_the_last_run_is_queued(app, client, redis_conn):
    create(client, "single", interval=1, no_overlap=True)
    first = stored(app, "single")
    assert tick_at(app, "single", first.next_run + 5) == "tick"
    second = stored(app, "single")
    assert tick_at(app, "single", second.next_run + 5) == "skip:overlap"
    assert stored(app, "single").next_due == second.next_due + 1000  # the skipped tick is consumed
    refused = client.post("/api/schedules/single/run", json={})
    assert refused.status_code == 409 and "no_overlap" in refused.get_json()["error"]["message"]
    [job] = jobs_of(redis_conn, "single")
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200  # canceled: no longer running
    third = stored(app, "single")
    assert tick_at(app, "single", third.next_run + 5) == "tick"
    runs = client.get("/api/schedules/single").get_json()["runs"]
    assert [(r["kind"], r["status"], r["reason"]) for r in runs] == [
        ("tick", "queued", None),
        ("skip", "skipped", "overlap"),
        ("tick", "canceled", None),
    ]
    skipped = [e for e in schedule_events(redis_conn) if e["event"] == "schedule.skipped"]
    assert skipped[0]["reason"] == "overlap"


def test_misfire_run_once_makes_one_catch_up_run_after_an_outage(app, client, redis_conn):
    create(client, "catching-up", interval=10)
    missed_from = stored(app, "catching-up")
    now = missed_from.next_due + 3_600_000 + 2_000  # no ticker ran for an hour
    counted, _ = service_of(app).tick_due(now)
    assert counted == {"catch_up": 1}
    current = stored(app, "catching-up")
    assert current.next_due == missed_from.next_due + 3_600_000
    assert service_of(app).tick_due(now)[0] == {"tick": 1}  # the current tick, on time
    assert service_of(app).tick_due(now)[0] == {}
    runs = client.get("/api/schedules/catching-up").get_json()["runs"]
    assert [(r["kind"], r["missed"]) for r in runs] == [("tick", None), ("catch_up", 360)]
    assert len(jobs_of(redis_conn, "catching-up")) == 2


def test_misfire_skip_makes_no_run_for_missed_ticks(app, client, redis_conn):
    create(client, "skipping", interval=10, misfire="skip")
    missed_from = stored(app, "skipping")
    now = missed_from.next_due + 3_600_000 + 2_000
    assert service_of(app).tick_due(now)[0] == {"skip:misfire": 1}
    assert service_of(app).tick_due(now)[0] == {"tick": 1}
    runs = client.get("/api/schedules/skipping").get_json()["runs"]
    assert [(r["kind"], r["reason"], r["missed"]) for r in runs] == [("tick", None, None), ("skip", "misfire", 360)]
    assert len(jobs_of(redis_conn, "skipping")) == 1
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'jobsvc_schedule_skips_total{reason="misfire",schedule="skipping"} 1.0' in metrics
    assert 'jobsvc_schedule_runs_total{kind="tick",schedule="skipping"} 1.0' in metrics
    assert 'jobsvc_schedule_lag_seconds_count{schedule="skipping"} 1.0' in metrics


def test_a_full_queue_or_a_job_type_gone_from_the_catalog_skips_the_tick(redis_server, redis_conn):
    app = create_app({"REDIS_URL": redis_server.url, "TESTING": True, "MAX_QUEUE_DEPTH": 1})
    client = app.test_client()
    create(client, "blocked", interval=1)
    assert client.post("/api/jobs", json=ADD).status_code == 202  # the queue is now full
    assert tick_at(app, "blocked", stored(app, "blocked").next_run + 5) == "skip:queue_full"
    create(client, "orphaned", interval=1)
    spec = stored(app, "orphaned").spec
    spec["job"]["name"] = "removed_in_a_redeploy"
    redis_conn.hset(keys.schedule("orphaned"), "spec", json.dumps(spec))
    assert tick_at(app, "orphaned", stored(app, "orphaned").next_run + 5) == "skip:invalid_job"
    reasons = [client.get(f"/api/schedules/{n}").get_json()["runs"][0]["reason"] for n in ("blocked", "orphaned")]
    assert reasons == ["queue_full", "invalid_job"]


def test_with_api_keys_a_schedule_and_its_jobs_belong_to_its_owner(redis_server, redis_conn):
    app = create_app({"REDIS_URL": redis_server.url, "TESTING": True, "API_KEYS": "alice:ka,bob:kb",
                      "ADMIN_API_KEYS": "root:kr"})  # fmt: skip
    client = app.test_client()

    def as_(key):
        return {"Authorization": f"Bearer {key}"}

    assert client.get("/api/schedules").status_code == 401
    body = {"name": "alices", "job": ADD, "interval": 5}
    assert client.post("/api/schedules", json=body, headers=as_("ka")).get_json()["owner"] == "alice"
    assert client.get("/api/schedules", headers=as_("kb")).get_json()["schedules"] == []
    for method, path in (("get", ""), ("patch", ""), ("delete", ""), ("post", "/run")):
        kwargs = {"json": {"paused": True} if method == "patch" else {}} if method in ("patch", "post") else {}
        response = getattr(client, method)(f"/api/schedules/alices{path}", headers=as_("kb"), **kwargs)
        assert response.status_code == 404, (method, path)
    assert [s["name"] for s in client.get("/api/schedules", headers=as_("kr")).get_json()["schedules"]] == ["alices"]
    assert client.patch("/api/schedules/alices", json={"paused": True}, headers=as_("kr")).status_code == 200
    run = client.post("/api/schedules/alices/run", json={}, headers=as_("kr")).get_json()
    assert json.loads(redis_conn.hget(keys.job(run["id"]), "meta"))["owner"] == "alice"  # the owner's, not root's
    assert client.get(f"/api/jobs/{run['id']}", headers=as_("ka")).status_code == 200
    assert client.get("/api/jobs?schedule=alices", headers=as_("kb")).get_json()["jobs"] == []
    assert [j["id"] for j in client.get("/api/jobs?schedule=alices", headers=as_("ka")).get_json()["jobs"]] == [
        run["id"]
    ]
    owners = {e.get("owner") for e in schedule_events(redis_conn)}
    assert owners == {"alice"}


def test_schedules_declared_in_code_are_applied_kept_and_protected(app, client, redis_conn):
    service = service_of(app)
    declared = {"from-code": {"job": ADD, "interval": 30, "no_overlap": True}}
    assert service.sync_declared(declared)["created"] == ["from-code"]
    assert service.sync_declared(declared)["unchanged"] == ["from-code"]
    assert client.patch("/api/schedules/from-code", json={"interval": 5}).status_code == 409
    assert client.delete("/api/schedules/from-code").status_code == 409
    assert client.patch("/api/schedules/from-code", json={"paused": True}).status_code == 200
    client.post("/api/schedules/from-code/run", json={})
    before = stored(app, "from-code")
    changed = {"from-code": {"job": {"name": "add", "args": [5, 5]}, "interval": 30, "no_overlap": True}}
    assert service.sync_declared(changed)["updated"] == ["from-code"]  # a redeploy with a new job
    after = client.get("/api/schedules/from-code").get_json()
    assert after["paused"] is True and after["job"]["args"] == [5, 5] and len(after["runs"]) == 1
    assert stored(app, "from-code").next_due == before.next_due  # timing unchanged: same next tick
    bad = {"broken": {"job": {"name": "add"}, "cron": "0 2 * *"}}
    report = service.sync_declared({**changed, **bad})
    assert report["invalid"] and "5 fields one space apart" in report["invalid"][0]
    assert service.sync_declared({})["deleted"] == ["from-code"]
    assert client.get("/api/schedules").get_json()["schedules"] == []


def test_the_cli_manages_schedules(app, runner, redis_conn):
    added = runner.invoke(args=["schedules", "add", "cli-one", "add", "2", "3", "--interval", "60"])
    assert added.exit_code == 0, added.output
    assert "cli-one: every 60 s" in added.output
    bad = runner.invoke(args=["schedules", "add", "cli-two", "add", "2", "3", "--cron", "0 2 * *"])
    assert bad.exit_code != 0 and "5 fields one space apart" in bad.output
    assert "paused" in runner.invoke(args=["schedules", "pause", "cli-one"]).output
    job_id = runner.invoke(args=["schedules", "run", "cli-one"]).output.strip()
    assert json.loads(redis_conn.hget(keys.job(job_id), "meta"))["schedule"] == "cli-one"
    assert "resumed, next run" in runner.invoke(args=["schedules", "resume", "cli-one"]).output
    listed = runner.invoke(args=["schedules", "list"]).output
    assert "cli-one" in listed and "every 60 s" in listed and "last queued" in listed
    assert runner.invoke(args=["schedules", "delete", "cli-one", "--yes"]).exit_code == 0
    assert runner.invoke(args=["schedules", "run", "cli-one"]).exit_code != 0


def test_the_ticker_thread_applies_declared_schedules_then_runs_their_ticks(app, redis_conn):
    import time

    from webapp.worker.ticker import Ticker

    declared = {"tick-tock": {"job": ADD, "interval": 1}}
    ticker = Ticker(app.config, app.extensions["redis_factory"], app.extensions["jobsvc"].catalog, declared)
    ticker.start()
    try:
        deadline = time.monotonic() + 15
        while len(jobs_of(redis_conn, "tick-tock")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ticker.stop()
    view = service_of(app).get("tick-tock", None)
    assert view["source"] == "code" and len(view["runs"]) >= 2
    assert [run["kind"] for run in view["runs"]] == ["tick"] * len(view["runs"])
