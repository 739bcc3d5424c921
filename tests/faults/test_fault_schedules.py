"""Periodic schedules under faults: exactly one job per tick with several worker.py processes
while one is SIGKILLed, and schedules with their history surviving a restart of everything
(Redis with AOF included)."""

from __future__ import annotations

import json
import signal
import time

from tests.faults.faultkit import report, service_config, wait_until
from tests.servers import RedisServer, start_worker
from webapp import create_app
from webapp.service.schedule_models import ScheduleCreate
from webapp.store import keys

RUN_SECONDS = 30
HISTORY = "200"


def schedules_app(redis_url: str):
    return create_app(service_config(redis_url, SCHEDULE_HISTORY=int(HISTORY), TESTING=True))


def entries(connection, name: str) -> list[dict]:
    """The schedule's history, oldest first."""
    return [json.loads(raw) for raw in reversed(connection.lrange(keys.schedule_runs(name), 0, -1))]


def ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def test_three_workers_one_sigkilled_make_exactly_one_job_per_tick(redis_server, redis_conn):
    workers = [start_worker(redis_server.url, WORKER_PROCESSES="1", SCHEDULE_HISTORY=HISTORY) for _ in range(3)]
    try:
        for worker in workers:
            wait_until(lambda w=worker: "schedule ticker started" in w.output(), 20, message="ticker started")
        app = schedules_app(redis_server.url)
        service = app.extensions["jobsvc_schedules"]
        body = ScheduleCreate.model_validate({"name": "every-second", "job": {"name": "add", "args": [1, 2]},
                                              "interval": 1})  # fmt: skip
        service.create(body, None)
        started = time.monotonic()
        time.sleep(RUN_SECONDS / 2)
        victim = workers[1]
        victim.signal(signal.SIGKILL)
        victim.process.wait(5)
        killed_at_ms = service.store.now_ms()
        time.sleep(RUN_SECONDS / 2)
        service.pause("every-second", None)
        elapsed = time.monotonic() - started
        history = entries(redis_conn, "every-second")
        runs = [entry for entry in history if entry.get("job_id")]
        dues = [ms(entry["due_at"]) for entry in runs]
        gaps = [later - earlier for earlier, later in zip(dues, dues[1:], strict=False) if later - earlier != 1000]
        duplicates = len(dues) - len(set(dues))
        skipped = [entry for entry in history if not entry.get("job_id")]
        lags = [ms(entry["enqueued_at"]) - ms(entry["due_at"]) for entry in runs]
        indexed = redis_conn.zcard(keys.index_by_schedule("every-second"))
        run_events = [json.loads(fields[b"data"]) for _, fields in redis_conn.xrange(keys.SCHEDULE_EVENTS_STREAM)]
        run_events = [event for event in run_events if event["event"] == "schedule.run"]
        wait_until(lambda: all(redis_conn.hget(keys.job(entry["job_id"]), "status") == b"finished" for entry in runs),
                   30, message="every run finished")  # fmt: skip
        ticks_across_kill = sum(1 for due in dues if killed_at_ms - 3000 <= due <= killed_at_ms + 3000)
        report(
            "schedule_exactly_once",
            workers=3, killed=1, seconds=round(elapsed, 1), jobs=len(dues), lost=len(gaps) + len(skipped),
            duplicated=duplicates, ticks=len(dues), duplicates=duplicates,
            gaps=len(gaps), skipped=len(skipped), catch_up=sum(1 for e in runs if e["kind"] != "tick"),
            jobs_indexed=indexed, ticks_within_3s_of_kill=ticks_across_kill,
            lag_ms_median=sorted(lags)[len(lags) // 2], lag_ms_max=max(lags),
        )  # fmt: skip
        assert duplicates == 0 and not gaps and not skipped, (gaps, skipped)
        assert all(entry["kind"] == "tick" for entry in runs)
        assert len(dues) >= RUN_SECONDS - 2
        assert indexed == len(runs) == len(run_events)
        assert {event["job_id"] for event in run_events} == {entry["job_id"] for entry in runs}
    finally:
        for worker in workers:
            worker.stop()


def test_a_restart_of_everything_keeps_schedules_state_and_history():
    redis = RedisServer(appendonly=True).start()
    worker = start_worker(redis.url, WORKER_PROCESSES="1")
    try:
        app = schedules_app(redis.url)
        service = app.extensions["jobsvc_schedules"]
        for name, extra in (("kept", {"interval": 1}), ("kept-paused", {"interval": 1, "paused": True})):
            body = {"name": name, "job": {"name": "add", "args": [2, 3]}, **extra}
            service.create(ScheduleCreate.model_validate(body), None)
        service.run_now("kept-paused", None)
        connection = redis.client()
        wait_until(lambda: connection.llen(keys.schedule_runs("kept")) >= 3, 20, message="three runs")
        service.pause("kept", None)
        before = {name: service.get(name, None) for name in ("kept", "kept-paused")}
        worker.stop()
        redis.stop()  # SIGTERM: Redis writes its AOF and exits; then start it again on the same files

        redis.start()
        worker = start_worker(redis.url, WORKER_PROCESSES="1")
        app = schedules_app(redis.url)
        service = app.extensions["jobsvc_schedules"]
        after = {name: service.get(name, None) for name in ("kept", "kept-paused")}
        for name in before:
            assert after[name]["paused"] is True
            assert [run["job_id"] for run in after[name]["runs"]] == [run["job_id"] for run in before[name]["runs"]]
            assert after[name]["runs"][0]["status"] == "finished"
        service.resume("kept", None)
        resumed_runs = len(after["kept"]["runs"])
        wait_until(lambda: len(service.get("kept", None)["runs"]) >= resumed_runs + 2, 20, message="runs after restart")
        dues = [ms(run["due_at"]) for run in service.get("kept", None)["runs"]]
        assert len(dues) == len(set(dues))
    finally:
        worker.stop()
        redis.cleanup()
