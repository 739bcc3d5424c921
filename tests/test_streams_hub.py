"""The per-process hub: one subscription, fan-out, and surviving a Redis restart."""

from __future__ import annotations

import json
import queue
import threading
import time

import httpx

from tests.servers import RedisServer, start_web
from tests.sse import parse_frames
from webapp.infra.redis import RedisFactory
from webapp.store import keys
from webapp.store.events import EventLog, parse_event_id
from webapp.web.sse.hub import Hub
from webapp.web.sse.tails import StreamTail


def hub_config(url: str) -> dict:
    return {
        "REDIS_URL": url,
        "REDIS_CONNECT_TIMEOUT": 1.0,
        "REDIS_SOCKET_TIMEOUT": 2.0,
        "EVENTS_CHANNEL": "jobsvc:events",
        "DEMO_CHANNEL": "task:pubsub:channel",
        "SSE_REDIS_CONNECTIONS": 2,
        "REDIS_MAX_CONNECTIONS": 10,
    }


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_wakeups_reach_the_job_s_subscribers_and_the_all_jobs_ones_only(redis_server, redis_conn):
    config = hub_config(redis_server.url)
    hub = Hub(config, RedisFactory(config))
    mine, other, everything, demo = hub.subscribe("j1"), hub.subscribe("j2"), hub.subscribe(None), hub.subscribe_demo()
    assert hub.connected.wait(10)
    for subscription in (mine, other, everything):
        subscription.clear()  # the wake-up every subscriber gets when the subscription is confirmed
    EventLog(redis_conn, "jobsvc:events", maxlen=100, default_ttl=60).append(
        "queued", job_id="j1", name="add", queue="default", status="queued"
    )
    assert mine.wait(5) and everything.wait(5)
    assert not other.wait(0.3)
    redis_conn.publish("task:pubsub:channel", "7")
    assert demo.wait(5)
    (message,) = demo.drain()
    assert message["channel"] == "task:pubsub:channel" and message["data"] == "7" and message["at"].endswith("Z")
    for subscription in (mine, other, everything, demo):
        hub.unsubscribe(subscription)
    assert hub.client_count() == 0
    hub.close()


def test_the_hub_resubscribes_after_a_redis_restart_and_wakes_everyone_to_re_read():
    server = RedisServer().start()
    try:
        config = hub_config(server.url)
        hub = Hub(config, RedisFactory(config))
        subscription = hub.subscribe("j1")
        assert hub.connected.wait(10)
        server.kill()
        wait_for(lambda: not hub.connected.is_set(), what="the hub to notice")
        subscription.clear()
        server.start()
        wait_for(lambda: hub.subscriptions_made == 2, what="the hub to resubscribe")
        assert subscription.wait(5)  # re-read: events published while it was away are in the stream
        subscription.clear()
        EventLog(server.client(), "jobsvc:events", maxlen=100, default_ttl=60).append(
            "started", job_id="j1", name="add", queue="default", status="started"
        )
        assert subscription.wait(5)
    finally:
        hub.close()
        server.cleanup()


def test_an_open_event_stream_survives_a_redis_restart(redis_conn):
    server = RedisServer().start()
    web = None
    frames: queue.Queue = queue.Queue()
    try:
        web, base = start_web(server.url, WEB_CONCURRENCY="1", HEARTBEAT_INTERVAL="0.5", SSE_POLL_INTERVAL="0.5")

        def read():
            try:
                with httpx.stream("GET", f"{base}/api/events", timeout=httpx.Timeout(10, read=30)) as response:
                    for frame in parse_frames(response.iter_lines()):
                        frames.put(frame)
            except httpx.HTTPError:  # the web stopping at the end of the test
                pass

        threading.Thread(target=read, daemon=True).start()
        assert frames.get(timeout=10) == {"retry": "2000"}
        server.kill()
        time.sleep(1.0)  # the stream keeps its client meanwhile (heartbeats, or "waiting for redis")
        server.start()
        time.sleep(0.5)
        event_id = EventLog(server.client(), "jobsvc:events", maxlen=100, default_ttl=60).append(
            "queued", job_id="after-restart", name="add", queue="default", status="queued"
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            frame = frames.get(timeout=20)
            if "data" in frame:
                break
        assert frame["id"] == event_id.decode()
        assert json.loads(frame["data"])["job_id"] == "after-restart"
    finally:
        if web is not None:
            web.stop()
        server.cleanup()


def test_stopping_the_web_ends_open_streams_at_once(redis_server, redis_conn):
    web, base = start_web(redis_server.url, WEB_CONCURRENCY="1", WEB_GRACEFUL_TIMEOUT="60")
    ended: queue.Queue = queue.Queue()
    opened: queue.Queue = queue.Queue()

    def hold(path: str) -> None:
        try:
            with httpx.stream("GET", base + path, timeout=httpx.Timeout(10, read=60)) as response:
                for line in response.iter_lines():
                    if line.startswith("retry:"):
                        opened.put(path)
            ended.put((path, "ended"))
        except httpx.HTTPError as exc:
            ended.put((path, repr(exc)))

    paths = ["/api/events", "/api/demo/events"]
    for path in paths:
        threading.Thread(target=hold, args=(path,), daemon=True).start()
    assert sorted(opened.get(timeout=20) for _ in paths) == sorted(paths)
    started = time.monotonic()
    code = web.stop(timeout=30)
    took = time.monotonic() - started
    assert code == 0
    assert sorted(ended.get(timeout=5) for _ in paths) == sorted((path, "ended") for path in paths)
    assert took < 10, f"the web took {took:.1f} s to stop with streams open (graceful timeout 60 s)"


def xrange_calls(redis_conn) -> int:
    return redis_conn.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0)


def test_live_clients_of_a_stream_share_one_read_per_notification(redis_conn):
    log = EventLog(redis_conn, "test:events", maxlen=1000, default_ttl=60)
    first = log.append("queued", job_id="j1", name="add", queue="default", status="queued").decode()
    tail = StreamTail(keys.EVENTS_STREAM)
    position = parse_event_id(first)
    assert tail.after(redis_conn, position, seq=1, max_age=60) == ([], False)
    second = log.append("started", job_id="j1", name="add", queue="default", status="started").decode()
    before = xrange_calls(redis_conn)
    results = [tail.after(redis_conn, position, seq=2, max_age=60) for _ in range(50)]  # 50 clients woken
    assert xrange_calls(redis_conn) - before == 1
    assert all([entry[1]["id"] for entry in entries] == [second] for entries, _ in results)
    assert results[0][0][0][2].startswith(f"id: {second}\nevent: started\ndata: ")


def test_a_tail_that_fell_behind_the_trimming_starts_over_instead_of_skipping(redis_conn):
    log = EventLog(redis_conn, "test:events", maxlen=50, default_ttl=60)
    first = parse_event_id(log.append("queued", job_id="j1", name="add", queue="default", status="queued").decode())
    tail = StreamTail(keys.EVENTS_STREAM)
    assert tail.after(redis_conn, first, seq=1, max_age=60) == ([], False)
    for i in range(600):  # the tail's last entry is trimmed before it reads again
        log.append("queued", job_id=f"k{i}", name="add", queue="default", status="queued")
    assert tail.after(redis_conn, first, seq=2, max_age=60) is None  # the caller reads Redis and reports the gap
    assert tail.base is None and not tail.entries
