"""Many streams on one web process: one Redis subscription fanned out, connections flat.

The 500-stream measurement is bench/sse_streams.py; this is its 100-stream check.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from rq import Queue
from rq.serializers import JSONSerializer

from tests.servers import start_web
from tests.sse import StreamCrowd
from webapp.store.events import EventLog

STREAMS = 100
READ_CONNECTIONS = 4


def web_worker_pid(master_pid: int) -> int:
    (child,) = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return int(child)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connections_of(redis_conn, pid: int) -> dict[str, list[dict]]:
    """The web process's event-stream connections, by role, from CLIENT LIST."""
    clients = redis_conn.client_list()
    return {
        "hub": [c for c in clients if c["name"] == f"jobsvc-sse-hub:{pid}"],
        "read": [c for c in clients if c["name"] == f"jobsvc-sse-read:{pid}"],
    }


def test_100_streams_share_one_subscription_and_a_few_connections(redis_server, redis_conn):
    web, base = start_web(
        redis_server.url, WEB_CONCURRENCY="1", SSE_REDIS_CONNECTIONS=str(READ_CONNECTIONS), HEARTBEAT_INTERVAL="5"
    )
    try:
        pid = web_worker_pid(web.pid)
        parked = Queue("parked", connection=redis_conn, serializer=JSONSerializer).enqueue("jobs.basic.add", 1, 2)
        with StreamCrowd([f"{base}/api/events"]) as first:
            first.wait(lambda: first.opened() == 1, 30, "the first stream")
            first.wait(lambda: connections_of(redis_conn, pid)["hub"], 30, "the hub to subscribe")
            rss_with_one = rss_kb(pid)
            urls = [f"{base}/api/events"] * (STREAMS // 2) + [f"{base}/api/jobs/{parked.id}/events"] * (STREAMS // 2)
            with StreamCrowd(urls) as crowd:
                crowd.wait(lambda: crowd.opened() == STREAMS, 60, f"{STREAMS} streams to open")
                time.sleep(0.5)
                with_all = connections_of(redis_conn, pid)
                rss_with_all = rss_kb(pid)
                # The same process still answers the API while it holds them (nothing blocks its loop).
                submitted = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [1, 2]}, timeout=10)
                assert submitted.status_code == 202
                assert httpx.get(f"{base}/api/jobs/{submitted.json()['id']}", timeout=10).status_code == 200

                log = EventLog(redis_conn, "jobsvc:events", maxlen=1000, default_ttl=600)
                event_id = log.append("progress", job_id=parked.id, name="add", queue="parked", status="started")
                crowd.wait(
                    lambda: all(any(e["id"] == event_id.decode() for _, e in s.events) for s in crowd.streams),
                    60,
                    "the event to reach every stream",
                )
                log.append("finished", job_id=parked.id, name="add", queue="parked", status="finished")
                job_streams = [s for s in crowd.streams if "/api/jobs/" in s.url]
                crowd.wait(lambda: all(s.ended for s in job_streams), 60, "the job streams to end")
                assert all(s.status == 200 and s.error is None for s in crowd.streams)
                after_fanout = connections_of(redis_conn, pid)
    finally:
        web.stop()

    # One subscription for the whole process (to the job events, schedule events, operator
    # events and demo channels), not one per stream.
    (hub,) = with_all["hub"]
    assert hub["sub"] == "4"
    # And at most the hub's few read connections, however many streams are open.
    assert len(with_all["read"]) <= READ_CONNECTIONS and len(after_fanout["read"]) <= READ_CONNECTIONS
    assert len(after_fanout["hub"]) == 1
    # A stream costs tens of KB (bench: ~22 KB); allow 10x before calling it unbounded.
    assert (rss_with_all - rss_with_one) / STREAMS < 250, (rss_with_one, rss_with_all)
