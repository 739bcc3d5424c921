"""Notification latency: from a worker finishing a job to an SSE client receiving `finished`.

    .venv/bin/python bench/sse_latency.py [--jobs 300] [--json out.json]

Starts a private Redis, the web (gunicorn, one process) and one worker.py, opens one
`GET /api/events?event=finished` stream and, as the baseline measured in the same run, one
plain Redis pub/sub subscriber on the events channel. Then submits `add` jobs one at a
time, waiting for each to be received by both. Everything runs on this machine, so wall
clocks compare. Reported, as median and p99:

- job end → SSE: from the job's `ended_at` (RQ, microseconds, taken by the worker when the
  function returned) to the SSE client reading the frame;
- job end → pub/sub: the same to the raw subscriber (what any pub/sub listener gets);
- SSE - pub/sub: what the SSE path adds (hub wake-up, stream read, HTTP write);
- event `at` → SSE: from the event's own timestamp (milliseconds, truncated) to the SSE client.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402

from tests.servers import RedisServer, start_web, start_worker  # noqa: E402
from tests.sse import parse_frames  # noqa: E402


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--json", dest="json_path", default=None)
    options = parser.parse_args()

    server = RedisServer().start()
    redis = server.client()
    web, base = start_web(server.url, WEB_CONCURRENCY="1", LOG_LEVEL="WARNING")
    worker = start_worker(server.url, LOG_LEVEL="WARNING")
    sse_seen: dict[str, tuple[float, dict]] = {}
    pubsub_seen: dict[str, float] = {}
    opened = threading.Event()

    def read_sse() -> None:
        try:
            with httpx.stream("GET", f"{base}/api/events?event=finished", timeout=httpx.Timeout(10, read=None)) as r:
                for frame in parse_frames(r.iter_lines()):
                    if "retry" in frame:
                        opened.set()
                    elif "data" in frame:
                        event = json.loads(frame["data"])
                        sse_seen[event["job_id"]] = (time.time(), event)
        except httpx.HTTPError:
            pass  # the web stopping at the end

    def read_pubsub() -> None:
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe("jobsvc:events")
        try:
            for message in pubsub.listen():
                received = time.time()
                event = json.loads(message["data"])
                if event["event"] == "finished":
                    pubsub_seen[event["job_id"]] = received
        except RedisError:
            pass  # Redis stopping at the end

    threading.Thread(target=read_sse, daemon=True).start()
    threading.Thread(target=read_pubsub, daemon=True).start()
    try:
        if not opened.wait(20):
            raise RuntimeError("the SSE stream did not open")
        job_ids = []
        with httpx.Client(timeout=10) as http:
            for i in range(20 + options.jobs):  # the first 20 warm up both tiers
                job_id = http.post(f"{base}/api/jobs", json={"name": "add", "args": [i, 1]}).json()["id"]
                deadline = time.monotonic() + 10
                while job_id not in sse_seen or job_id not in pubsub_seen:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"job {job_id} was not notified within 10 s")
                    time.sleep(0.0005)
                if i >= 20:
                    job_ids.append(job_id)
        ended = {job_id: epoch(redis.hget(f"rq:job:{job_id}", "ended_at").decode()) for job_id in job_ids}
    finally:
        worker.stop()
        web.stop()
        server.cleanup()

    series = {
        "job end -> SSE": [(sse_seen[j][0] - ended[j]) * 1000 for j in job_ids],
        "job end -> pub/sub": [(pubsub_seen[j] - ended[j]) * 1000 for j in job_ids],
        "SSE - pub/sub": [(sse_seen[j][0] - pubsub_seen[j]) * 1000 for j in job_ids],
        "event at -> SSE": [(sse_seen[j][0] - epoch(sse_seen[j][1]["at"])) * 1000 for j in job_ids],
    }
    summary = {
        name: {"median_ms": round(statistics.median(values), 2), "p99_ms": round(percentile(values, 0.99), 2)}
        for name, values in series.items()
    }
    print(f"\nnotification latency over {options.jobs} jobs (one web process, gevent; one worker; same machine)\n")
    print(f"{'':<22}{'median ms':>10}{'p99 ms':>10}")
    for name, figures in summary.items():
        print(f"{name:<22}{figures['median_ms']:>10}{figures['p99_ms']:>10}")
    ratio = summary["job end -> SSE"]["median_ms"] / summary["job end -> pub/sub"]["median_ms"]
    print(f"\nSSE vs raw pub/sub (median): {ratio:.2f}x")
    if options.json_path:
        Path(options.json_path).write_text(json.dumps({"jobs": options.jobs, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
