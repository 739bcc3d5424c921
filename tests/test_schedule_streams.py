"""Schedule events over real HTTP: gunicorn serving /api/schedule-events, worker.py ticking."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.servers import start_web, start_worker
from tests.sse import events_only, parse_frames
from webapp.store.events import parse_event_id

TIMEOUT = httpx.Timeout(10.0, read=30.0)


@pytest.fixture(scope="module")
def stack(redis_server):
    web, base = start_web(redis_server.url, WEB_CONCURRENCY="1", HEARTBEAT_INTERVAL="0.5")
    worker = start_worker(redis_server.url, "--processes", "1")
    yield base
    worker.stop()
    web.stop()


def read(url: str, headers: dict | None = None, count: int = 1, accept=lambda event: True) -> list[dict]:
    """The first `count` events of the stream at `url` that `accept` takes."""
    found: list[dict] = []
    with httpx.stream("GET", url, headers=headers or {}, timeout=TIMEOUT) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for frame in events_only(parse_frames(response.iter_lines())):
            event = json.loads(frame["data"])
            assert frame["event"] == event["event"] and frame["id"] == event["id"]
            if accept(event):
                found.append(event)
                if len(found) == count:
                    return found
    raise AssertionError(f"the stream ended after {found}")


def test_schedule_events_stream_live_resume_and_job_events_name_the_schedule(stack, redis_conn):
    body = {"name": "streamed", "job": {"name": "add", "args": [1, 1]}, "interval": 1}
    assert httpx.post(stack + "/api/schedules", json=body, timeout=TIMEOUT).status_code == 201
    runs = read(
        stack + "/api/schedule-events?schedule=streamed", count=2, accept=lambda e: e["event"] == "schedule.run"
    )
    assert [run["schedule"] for run in runs] == ["streamed", "streamed"] and runs[0]["due_at"] < runs[1]["due_at"]
    replay = read(stack + "/api/schedule-events", headers={"Last-Event-ID": "0-0"}, count=1)
    assert replay[0]["event"] == "schedule.created" and replay[0]["schedule"] == "streamed"
    after_first = read(stack + "/api/schedule-events", headers={"Last-Event-ID": runs[0]["id"]}, count=1)
    assert parse_event_id(after_first[0]["id"]) > parse_event_id(runs[0]["id"])
    finished = read(stack + "/api/events?event=finished", count=1, accept=lambda e: e.get("schedule") == "streamed")
    assert finished[0]["job_id"] and finished[0]["name"] == "add"
    httpx.patch(stack + "/api/schedules/streamed", json={"paused": True}, timeout=TIMEOUT)
