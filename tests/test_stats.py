"""The overview charts' data: per-minute counters written by the event script, gauges sampled by
one process per interval, windows read back by minute and by 10 minutes."""

from __future__ import annotations

import json
import time

from tests.servers import start_worker
from webapp.store import keys, stats
from webapp.store.events import EventLog

MINUTE = 60


def hour_fields(redis_conn, now: float) -> dict[str, str]:
    raw = redis_conn.hgetall(keys.stats_hour(int(now // 3600)))
    return {name.decode(): value.decode() for name, value in raw.items()}


def test_the_event_script_counts_finished_and_failed_jobs_per_minute(app, redis_conn):
    log = EventLog.from_config(redis_conn, app.config)
    for event in ("queued", "started", "finished", "finished", "failed", "retrying", "progress"):
        log.append(event, job_id="job-1", name="add", queue="default", status=event)
    now = time.time()
    minute = int(now // MINUTE)
    fields = hour_fields(redis_conn, now)
    assert {name: value for name, value in fields.items() if name.startswith(str(minute))} == {
        f"{minute}:finished": "2",
        f"{minute}:failed": "1",
    }
    ttl = redis_conn.ttl(keys.stats_hour(minute // 60))
    assert stats.RETENTION - 5 < ttl <= stats.RETENTION
    last = stats.series(redis_conn, ["default"], "1h", now)["points"][-1]
    assert (last["finished"], last["failed"]) == (2, 1)


def test_windows_sum_counters_and_keep_the_highest_gauge_per_step(redis_conn):
    now = 1_800_000_000.0  # a fixed moment, aligned on the hour
    first_minute = int(now // MINUTE) - 30
    for offset in range(30):
        minute = first_minute + offset
        key = keys.stats_hour(minute // 60)
        redis_conn.hset(key, f"{minute}:finished", 2)
        if offset % 10 == 0:
            redis_conn.hset(key, f"{minute}:failed", 1)
        sample = {"workers": 1 + offset % 3, "queues": {"default": {"depth": offset, "oldest_age": offset / 2}}}
        redis_conn.hset(key, f"{minute}:gauges", json.dumps(sample))
    hour = stats.series(redis_conn, ["default", "low"], "1h", now)
    assert hour["step"] == 60 and len(hour["points"]) == 60
    assert sum(point["finished"] for point in hour["points"]) == 60
    assert sum(point["failed"] for point in hour["points"]) == 3
    assert hour["points"][0]["workers"] is None  # before the first sample: a gap, not a zero
    assert hour["points"][-2]["queues"]["default"] == {"depth": 29, "oldest_age": 14.5}  # the minute before now
    assert hour["points"][-2]["queues"]["low"] == {"depth": None, "oldest_age": None}
    assert hour["points"][-1]["at"] == "2027-01-15T08:00:00.000Z" and hour["points"][-1]["finished"] == 0
    day = stats.series(redis_conn, ["default"], "1d", now)
    assert day["step"] == 600 and len(day["points"]) == 144
    filled = [point for point in day["points"] if point["finished"]]
    assert [point["finished"] for point in filled] == [20, 20, 20]
    assert [point["queues"]["default"]["depth"] for point in filled] == [9, 19, 29]  # the highest of each step
    assert [point["workers"] for point in filled] == [3, 3, 3]


def test_one_sample_per_interval_whoever_asks(app, redis_conn):
    service = app.extensions["jobsvc"]
    for number in range(3):
        service.submit(None, "add", [number, 1], queue="low")
    queues = app.config["QUEUES"]
    assert stats.sample_if_due(redis_conn, queues, 5.0)
    assert not stats.sample_if_due(redis_conn, queues, 5.0)  # another process, same interval: nothing
    now = time.time()
    [sample] = [json.loads(value) for name, value in hour_fields(redis_conn, now).items() if name.endswith(":gauges")]
    assert sample["queues"]["low"]["depth"] == 3 and sample["queues"]["default"] == {"depth": 0, "oldest_age": 0.0}
    assert 0 <= sample["queues"]["low"]["oldest_age"] < 5
    assert sample["workers"] == 0


def test_the_stats_endpoint(client, redis_conn):
    client.post("/api/jobs", json={"name": "add", "args": [1, 2], "queue": "high"})
    view = client.get("/api/stats").get_json()
    assert view["window"] == "1h" and view["step"] == 60 and len(view["points"]) == 60
    assert view["queues"] == ["high", "default", "low"]
    assert view["now"]["queues"]["high"]["depth"] == 1
    assert view["points"][-1]["queues"]["high"]["depth"] == 1  # the request sampled: no worker.py runs
    day = client.get("/api/stats?window=1d").get_json()
    assert day["step"] == 600 and len(day["points"]) == 144
    assert client.get("/api/stats?window=1w").status_code == 422
    assert client.get("/api/stats?window=1h&x=1").status_code == 422


def test_worker_py_counts_its_jobs_and_samples_the_gauges(app, redis_server, redis_conn):
    """The real write paths: STEP (finished), RQ's failure path (failed), and the supervisor's duty."""
    service = app.extensions["jobsvc"]
    for number in range(5):
        service.submit(None, "add", [number, 1])
    service.submit(None, "fail", kwargs={"message": "boom"})
    worker = start_worker(redis_server.url, STATS_SAMPLE_INTERVAL="0.5", DEFAULT_JOB_RETRIES="0")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            points = stats.series(redis_conn, app.config["QUEUES"], "1h")["points"]
            done = (sum(p["finished"] for p in points), sum(p["failed"] for p in points))
            workers = [p["workers"] for p in points if p["workers"]]
            if done == (5, 1) and workers:
                break
            time.sleep(0.2)
        assert done == (5, 1), worker.output()
        assert workers and workers[-1] >= 1, worker.output()
    finally:
        worker.stop()
