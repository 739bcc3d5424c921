"""SSE over real HTTP: gunicorn serving the streams, worker.py running the jobs, a real Redis.

Streams are read incrementally with `httpx.stream`, as a browser's EventSource would.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from tests.servers import start_web, start_worker
from tests.sse import events_only, parse_frames
from webapp.store import keys
from webapp.store.events import EventLog, decode_entry

TIMEOUT = httpx.Timeout(10.0, read=30.0)


@pytest.fixture(scope="module")
def stack(redis_server):
    web, base = start_web(redis_server.url, HEARTBEAT_INTERVAL="0.5", SSE_POLL_INTERVAL="1")
    worker = start_worker(redis_server.url, "--processes", "2")
    yield base
    worker.stop()
    web.stop()


def submit(base: str, name: str, args: list, queue: str | None = None) -> str:
    body = {"name": name, "args": args, **({"queue": queue} if queue else {})}
    response = httpx.post(f"{base}/api/jobs", json=body, timeout=TIMEOUT)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def read_stream(url: str, headers: dict | None = None, until=None, deadline: float = 30.0) -> tuple[list[dict], bool]:
    """Frames read from `url` until the server ends the stream (→ True) or `until(frames)` holds."""
    frames: list[dict] = []
    stop_at = time.monotonic() + deadline
    with httpx.stream("GET", url, headers=headers or {}, timeout=TIMEOUT) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for frame in parse_frames(response.iter_lines()):
            frames.append(frame)
            if until is not None and until(frames):
                return frames, False
            assert time.monotonic() < stop_at, f"stream still open after {deadline} s: {frames[-5:]}"
    return frames, True


def timeline(redis_conn, job_id: str) -> list[dict]:
    return [decode_entry(*entry) for entry in redis_conn.xrange(keys.job_events(job_id))]


def as_events(frames: list[dict]) -> list[dict]:
    """The events of the frames, checking each frame's id and name match its data."""
    events = []
    for frame in events_only(frames):
        event = json.loads(frame["data"])
        assert frame["id"] == event["id"] and frame["event"] == event["event"]
        events.append(event)
    return events


def count_events(kind: str, at_least: int):
    return lambda frames: sum(1 for f in frames if f.get("event") == kind) >= at_least


def test_a_job_stream_replays_goes_live_and_ends_after_the_terminal_event(stack, redis_conn):
    job_id = submit(stack, "sleep", [1.0])
    frames, ended = read_stream(f"{stack}/api/jobs/{job_id}/events")
    assert ended, "the stream must end after the terminal event"
    assert frames[0] == {"retry": "2000"}
    events = as_events(frames)
    names = [event["event"] for event in events]
    assert names[0] == "queued" and names[1] == "started" and names[-1] == "finished"
    assert set(names[2:-1]) == {"progress"} and len(names) == 13
    assert events == timeline(redis_conn, job_id)
    assert events[-1]["status"] == "finished" and events[-1]["name"] == "sleep"

    # Once over, the same URL replays the whole timeline and ends at once.
    again, ended = read_stream(f"{stack}/api/jobs/{job_id}/events", deadline=10)
    assert ended and as_events(again) == events


def test_a_retried_job_s_stream_replays_both_runs_and_ends_after_the_last(stack, redis_conn):
    """A terminal event ends the stream only when it is the job's latest: a retry after a failure
    is a second run in the same timeline (the replay used to stop at the first `failed`)."""
    job_id = submit(stack, "fail", ["first"])
    read_stream(f"{stack}/api/jobs/{job_id}/events")  # until its first end
    assert httpx.post(f"{stack}/api/jobs/{job_id}/retry", json={}, timeout=TIMEOUT).status_code == 202
    frames, ended = read_stream(f"{stack}/api/jobs/{job_id}/events")
    assert ended
    names = [event["event"] for event in as_events(frames)]
    assert names == ["queued", "started", "failed", "queued", "started", "failed"], names
    assert as_events(frames) == timeline(redis_conn, job_id)


def test_reconnecting_with_last_event_id_gets_exactly_the_missing_events(stack, redis_conn):
    job_id = submit(stack, "sleep", [1.5])
    url = f"{stack}/api/jobs/{job_id}/events"
    first, ended = read_stream(url, until=count_events("progress", 3))
    assert not ended
    received = as_events(first)
    time.sleep(0.4)  # events go on while the client is away
    second, ended = read_stream(url, headers={"Last-Event-ID": received[-1]["id"]})
    assert ended
    resumed = as_events(second)
    assert resumed and resumed[0]["id"] > received[-1]["id"]
    assert received + resumed == timeline(redis_conn, job_id)  # nothing lost, nothing twice


def test_last_event_id_also_works_as_a_query_parameter_and_the_header_wins(stack, redis_conn):
    job_id = submit(stack, "add", [1, 2])
    full, _ = read_stream(f"{stack}/api/jobs/{job_id}/events")
    events = as_events(full)
    assert [e["event"] for e in events] == ["queued", "started", "finished"]
    after_first, _ = read_stream(f"{stack}/api/jobs/{job_id}/events?last_event_id={events[0]['id']}")
    assert as_events(after_first) == events[1:]
    header_wins, _ = read_stream(
        f"{stack}/api/jobs/{job_id}/events?last_event_id={events[0]['id']}", headers={"Last-Event-ID": events[1]["id"]}
    )
    assert as_events(header_wins) == events[2:]
    # Resuming after the terminal event: nothing more to say, the stream ends.
    done, ended = read_stream(f"{stack}/api/jobs/{job_id}/events", headers={"Last-Event-ID": events[-1]["id"]})
    assert ended and as_events(done) == []


def test_a_snapshot_then_a_stream_from_its_last_event_id_has_no_gap(stack, redis_conn):
    job_id = submit(stack, "sleep", [2.0])
    deadline = time.monotonic() + 20
    while True:
        snapshot = httpx.get(f"{stack}/api/jobs/{job_id}", timeout=TIMEOUT).json()
        if snapshot["progress"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert snapshot["last_event_id"]
    resume = {"Last-Event-ID": snapshot["last_event_id"]}
    frames, ended = read_stream(f"{stack}/api/jobs/{job_id}/events", headers=resume)
    assert ended
    full = timeline(redis_conn, job_id)
    ids = [event["id"] for event in full]
    seen = ids[: ids.index(snapshot["last_event_id"]) + 1]
    assert seen + [event["id"] for event in as_events(frames)] == ids
    # The snapshot reflects the events up to the one it names: its progress is the last one reported.
    (latest_progress, *_) = [e["progress"] for e in reversed(full[: len(seen)]) if e["event"] == "progress"]
    assert snapshot["progress"] == latest_progress


@pytest.mark.parametrize(
    "value",
    ["abc", "1", "1-", "-1", "1-2-3", "1.5-0", "18446744073709551616-0", "1-x", "٣-0", "12345678901234567890-0"],
)
def test_a_bad_last_event_id_is_a_json_error_before_streaming(stack, redis_conn, value):
    job_id = submit(stack, "add", [1, 2])
    for url in (f"{stack}/api/jobs/{job_id}/events", f"{stack}/api/events"):
        response = httpx.get(url, headers={"Last-Event-ID": value.encode()}, timeout=TIMEOUT)
        assert response.status_code == 400, (value, response.text)
        assert response.headers["content-type"] == "application/json"
        assert "Last-Event-ID" in response.json()["error"]["message"]
        by_query = httpx.get(url, params={"last_event_id": value}, timeout=TIMEOUT)
        assert by_query.status_code == 422  # the documented pattern of the query parameter
        assert by_query.json()["error"]["details"][0]["argument"] == "last_event_id"


def test_an_id_newer_than_any_event_is_told_as_a_gap_and_the_stream_starts_over(stack, redis_conn):
    """A client keeping an id from before Redis lost its data must not wait, silently, for ids past it."""
    job_id = submit(stack, "add", [1, 2])
    frames, ended = read_stream(f"{stack}/api/jobs/{job_id}/events", headers={"Last-Event-ID": "99999999999999-0"})
    assert ended
    gap = next(frame for frame in frames if frame.get("event") == "gap")
    assert json.loads(gap["data"])["requested"] == "99999999999999-0"
    events = as_events([frame for frame in frames if frame.get("event") != "gap"])
    assert events[0]["event"] == "queued"  # the whole timeline follows
    frames, _ = read_stream(f"{stack}/api/events", headers={"Last-Event-ID": "99999999999999-0"},
                            until=lambda frames: any(f.get("event") == "queued" for f in frames))  # fmt: skip
    assert frames[1]["event"] == "gap"


def test_unknown_jobs_and_bad_filters_are_json_errors(stack, redis_conn):
    for path, status in [
        ("/api/jobs/doesnotexist/events", 404),
        ("/api/jobs/abc:def/events", 404),
        ("/api/events?queue=nope", 422),
        ("/api/events?name=os.system", 422),
        ("/api/events?event=exploded", 422),
        ("/api/events?queue=default,nope", 422),
    ]:
        response = httpx.get(stack + path, timeout=TIMEOUT)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"] == "application/json"
        assert "error" in response.json()


def test_idle_streams_send_keep_alive_comments(stack, redis_conn):
    # A job no worker serves (queue "elsewhere"): it exists, nothing happens to it.
    job = Queue("elsewhere", connection=redis_conn, serializer=JSONSerializer).enqueue("jobs.basic.add", 1, 2)
    for url in (f"{stack}/api/jobs/{job.id}/events", f"{stack}/api/events", f"{stack}/api/demo/events"):
        frames, ended = read_stream(url, until=lambda fs: sum(1 for f in fs if f.get("comment") == "keep-alive") >= 2)
        assert not ended
        assert frames[0] == {"retry": "2000"}
        assert all("comment" in frame for frame in frames[1:])


def test_the_global_stream_filters_by_queue_job_name_and_event(stack, redis_conn):
    def watch(query: str, count: int) -> list[dict]:
        """Open the stream, run three jobs once it is open, read until `count` events came."""
        seen: list[dict] = []
        with httpx.stream("GET", f"{stack}/api/events?{query}", timeout=TIMEOUT) as response:
            assert response.status_code == 200
            for frame in parse_frames(response.iter_lines()):
                if frame.get("retry"):
                    submit(stack, "add", [1, 1])  # default queue
                    submit(stack, "fail", ["no"], queue="high")
                    submit(stack, "add", [2, 2], queue="high")
                elif "data" in frame:
                    seen.append(json.loads(frame["data"]))
                    if len(seen) == count:
                        return seen
        raise AssertionError("stream ended")

    by_queue = watch("queue=high&event=finished,failed", 2)
    assert sorted((e["queue"], e["event"], e["name"]) for e in by_queue) == [
        ("high", "failed", "fail"),
        ("high", "finished", "add"),
    ]
    by_name = watch("name=add&event=queued", 2)
    assert [(e["name"], e["event"], e["queue"]) for e in by_name] == [
        ("add", "queued", "default"),
        ("add", "queued", "high"),
    ]


def test_a_client_behind_the_retained_window_is_told_of_the_gap(stack, redis_conn):
    log = EventLog(redis_conn, "test:unheard", maxlen=50, default_ttl=60)
    ids = [
        log.append("queued", job_id=f"j{i}", name="add", queue="default", status="queued").decode() for i in range(600)
    ]
    retained = [entry[0].decode() for entry in redis_conn.xrange(keys.EVENTS_STREAM)]
    assert ids[0] not in retained and len(retained) < 600  # the oldest were trimmed

    frames, _ = read_stream(
        f"{stack}/api/events", headers={"Last-Event-ID": ids[0]}, until=lambda fs: len(list(events_only(fs))) >= 3
    )
    assert frames[0] == {"retry": "2000"}
    assert frames[1]["event"] == "gap" and "id" not in frames[1]
    assert json.loads(frames[1]["data"]) == {"requested": ids[0], "oldest": retained[0]}
    assert [frame["id"] for frame in frames[2:]] == retained[:2]  # then on from the oldest kept

    # Resuming from an id still in the window: no gap, just what follows it.
    frames, _ = read_stream(
        f"{stack}/api/events", headers={"Last-Event-ID": retained[5]}, until=lambda fs: len(list(events_only(fs))) >= 2
    )
    assert [frame.get("event") for frame in frames[1:]] == ["queued", "queued"]
    assert [frame["id"] for frame in frames[1:]] == retained[6:8]


def test_jobs_enqueued_by_plain_rq_code_get_worker_events(stack, redis_conn):
    queue = Queue("default", connection=redis_conn, serializer=JSONSerializer)
    added = queue.enqueue("jobs.basic.add", 2, 3)
    failed = queue.enqueue("jobs.basic.fail", "from a script")
    added_frames, ended = read_stream(f"{stack}/api/jobs/{added.id}/events")
    assert ended
    events = as_events(added_frames)
    assert [(e["event"], e["status"]) for e in events] == [("started", "started"), ("finished", "finished")]
    assert events[0]["name"] == "add" and events[0]["queue"] == "default"
    failed_frames, ended = read_stream(f"{stack}/api/jobs/{failed.id}/events")
    assert ended
    events = as_events(failed_frames)
    assert [e["event"] for e in events] == ["started", "failed"]
    assert events[-1]["error"] == {"type": "RuntimeError", "message": "from a script"}


def test_terminal_events_keep_the_timeline_as_long_as_the_job(stack, redis_conn):
    finished = submit(stack, "add", [1, 2])
    failed = submit(stack, "fail", ["boom"])
    for job_id in (finished, failed):
        read_stream(f"{stack}/api/jobs/{job_id}/events")
    assert 86000 < redis_conn.ttl(keys.job_events(finished)) <= 86400  # RESULT_TTL
    assert 604000 < redis_conn.ttl(keys.job_events(failed)) <= 604800  # FAILURE_TTL
