"""`GET /api/operator-events` over real HTTP (gunicorn, a private Redis, API keys): queue pauses
and bulk progress live and resumed with Last-Event-ID; owner keys get their own bulk calls' events
only; viewers get them all."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.keyed import ADMIN_KEY, KEYS, OTHER_KEY, OWNER_KEY, VIEWER_KEY, bearer
from tests.servers import start_web
from tests.sse import parse_frames
from tests.test_schedule_streams import TIMEOUT, read
from webapp.store.events import parse_event_id


@pytest.fixture(scope="module")
def web(redis_server):
    process, base = start_web(redis_server.url, WEB_CONCURRENCY="1", HEARTBEAT_INTERVAL="0.5", BULK_PAGE_SIZE="2",
                              **KEYS)  # fmt: skip
    yield base
    process.stop()


@pytest.fixture(autouse=True)
def empty_redis(redis_conn):
    redis_conn.flushall()


def submit(base: str, key: str, count: int, queue: str = "low") -> list[str]:
    ids = []
    for _ in range(count):
        answer = httpx.post(base + "/api/jobs", json={"name": "add", "args": [1, 2], "queue": queue},
                            headers=bearer(key), timeout=TIMEOUT)  # fmt: skip
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    return ids


def bulk(base: str, key: str, body: dict) -> dict:
    answer = httpx.post(base + "/api/jobs/bulk", json=body, headers=bearer(key), timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_live_events_then_a_resume_after_the_last_id_seen(web):
    submit(web, ADMIN_KEY, 3)
    received, ready, done = [], threading.Event(), threading.Event()

    def collect() -> None:
        with httpx.stream("GET", web + "/api/operator-events", headers=bearer(VIEWER_KEY), timeout=TIMEOUT) as answer:
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
            for frame in parse_frames(answer.iter_lines()):
                ready.set()  # the `retry:` frame: subscribed before its first read
                if "data" in frame:
                    event = json.loads(frame["data"])
                    assert frame["event"] == event["event"] and frame["id"] == event["id"]
                    received.append(event)
                if len(received) == 6:
                    done.set()
                    return

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    assert ready.wait(10), "the stream did not open"
    assert httpx.post(web + "/api/queues/low/pause", headers=bearer(ADMIN_KEY), timeout=TIMEOUT).status_code == 200
    answer = bulk(web, ADMIN_KEY, {"action": "cancel", "filter": {"queue": "low"}, "dry_run": True})
    assert (answer["matched"], answer["eligible"]) == (3, 3)
    assert httpx.post(web + "/api/queues/low/resume", headers=bearer(ADMIN_KEY), timeout=TIMEOUT).status_code == 200
    assert done.wait(20), f"only {received}"
    thread.join(10)
    names = [event["event"] for event in received]
    assert names == ["queue.paused", "bulk.started", "bulk.progress", "bulk.progress", "bulk.finished", "queue.resumed"]
    assert [event["matched"] for event in received[2:5]] == [2, 3, 3] and received[4]["dry_run"] is True
    assert received[1]["by"] == "ops" and received[1]["owner"] is None
    assert [parse_event_id(event["id"]) for event in received] == sorted(parse_event_id(e["id"]) for e in received)

    resumed = read(web + "/api/operator-events", headers={**bearer(ADMIN_KEY), "Last-Event-ID": received[2]["id"]},
                   count=3)  # fmt: skip
    assert resumed == received[3:]


def test_an_owner_key_gets_its_own_bulk_calls_only(web):
    alices = submit(web, OWNER_KEY, 3)
    submit(web, OTHER_KEY, 3)
    assert httpx.post(web + "/api/queues/low/pause", headers=bearer(ADMIN_KEY), timeout=TIMEOUT).status_code == 200
    bulk(web, ADMIN_KEY, {"action": "retry", "filter": {}, "dry_run": True})
    bulk(web, OTHER_KEY, {"action": "cancel", "filter": {}})
    answer = bulk(web, OWNER_KEY, {"action": "cancel", "filter": {}})
    assert (answer["matched"], answer["done"]) == (3, 3)
    replay = {**bearer(OWNER_KEY), "Last-Event-ID": "0-0"}
    mine = read(web + "/api/operator-events", headers=replay, count=4)
    assert [event["event"] for event in mine] == ["bulk.started", "bulk.progress", "bulk.progress", "bulk.finished"]
    assert all(event["owner"] == "alice" and event["by"] == "alice" for event in mine)
    assert mine[-1]["done"] == 3
    cursors = [event["cursor"] for event in mine if event["event"] == "bulk.progress"]
    assert all(cursor.partition(":")[2] in alices for cursor in cursors)

    everything = read(web + "/api/operator-events", headers={**bearer(VIEWER_KEY), "Last-Event-ID": "0-0"}, count=14)
    assert everything[0]["event"] == "queue.paused"
    assert [event["by"] for event in everything if event["event"] == "bulk.started"] == ["ops", "bob", "alice"]
    assert everything[-4:] == mine


def test_bad_resume_ids_and_unknown_parameters_are_refused(web):
    headers = bearer(ADMIN_KEY)
    bad = httpx.get(web + "/api/operator-events", headers={**headers, "Last-Event-ID": "yesterday"}, timeout=TIMEOUT)
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]["message"]
    unknown = httpx.get(web + "/api/operator-events?queue=low", headers=headers, timeout=TIMEOUT)
    assert unknown.status_code == 422
    assert httpx.get(web + "/api/operator-events", timeout=TIMEOUT).status_code == 401
