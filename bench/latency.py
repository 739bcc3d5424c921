"""(c) Enqueue → result visible, one job at a time; (d) finish → SSE client.

(c) The client enqueues as each worker's users do (the service through its own submit
path, RQ through `enqueue_call`, the hand-written worker with LPUSH), then polls until the
result is readable. Warm jobs run back to back; idle jobs after the worker sat idle.
(d) Runs when the web app has GET /api/jobs/<id>/events: a `sleep` job's stream is opened
right after submission and the `finished` event's arrival is compared with the job's
`ended_at` (both clocks are this machine's).
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
from redis import Redis
from rq import Queue
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import str_to_date

from bench import handwritten
from bench.drain import start_worker, wait_idle
from bench.util import percentile
from tests.servers import start_web
from webapp import create_app
from webapp.service.submission import SubmitRequest
from webapp.store import keys


def latency(redis_url: str, kind: str, warm: int, idle_samples: int, idle_seconds: float) -> dict:
    connection = Redis.from_url(redis_url)
    connection.flushall()
    worker = start_worker(kind, redis_url)
    try:
        wait_idle(connection, 1, worker)
        if kind == "service":
            service = create_app({"REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}).extensions["jobsvc"]

            def enqueue(i):  # what POST /api/jobs runs: validate and plan, then one EVALSHA
                planned = service.plan(SubmitRequest(name="add", args=[i, 1]))
                return Result.get_key(service.enqueue([planned], None).jobs[0]["id"])
        elif kind == "handwritten":

            def enqueue(i):
                job_id = f"lat{i}"
                connection.lpush(handwritten.QUEUE, json.dumps({"id": job_id, "a": i, "b": 1}))
                return handwritten.RESULT_PREFIX + job_id
        else:
            queue = Queue("default", connection=connection, serializer=JSONSerializer)

            def enqueue(i):
                job = queue.enqueue_call(func="jobs.basic.add", args=(i, 1), result_ttl=3600, meta={"name": "add"})
                return Result.get_key(job.id)

        def one(i):
            started = time.perf_counter()
            key = enqueue(i)
            deadline = started + 30
            while not connection.exists(key):
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{kind}: job {i} gave no result in 30 s")
            return (time.perf_counter() - started) * 1000

        for i in range(20):  # warm-up
            one(i)
        warm_ms = [one(100 + i) for i in range(warm)]
        idle_ms = []
        for i in range(idle_samples):
            time.sleep(idle_seconds)
            idle_ms.append(one(10_000 + i))
    finally:
        worker.stop()
    return {
        "kind": kind,
        "warm_p50_ms": percentile(warm_ms, 0.5),
        "warm_p99_ms": percentile(warm_ms, 0.99),
        "idle_p50_ms": percentile(idle_ms, 0.5),
        "idle_max_ms": max(idle_ms) if idle_ms else float("nan"),
        "idle_samples_ms": idle_ms,
    }


def has_sse_route(redis_url: str) -> bool:
    app = create_app({"REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"})
    # the rule may name a converter: /api/jobs/<job_id:job_id>/events
    return any(re.fullmatch(r"/api/jobs/<(\w+:)?job_id>/events", rule.rule) for rule in app.url_map.iter_rules())


def sse_latency(redis_url: str, samples: int) -> dict:
    """Finish → SSE client delivery, per job; skipped (with a reason) without the route.

    The baseline, measured on the same jobs: a plain Redis pub/sub subscriber on the events
    channel (what any listener gets without the SSE path: hub, stream read, HTTP)."""
    if not has_sse_route(redis_url):
        return {"skipped": "GET /api/jobs/<id>/events does not exist in this build"}
    connection = Redis.from_url(redis_url)
    connection.flushall()
    web, base = start_web(redis_url, SUBMIT_RATE_LIMIT="", LOG_LEVEL="WARNING")
    worker = start_worker("service", redis_url)
    pubsub = connection.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.EVENTS_CHANNEL)
    heard: dict[str, float] = {}
    stop = threading.Event()

    def listen():
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message is None:
                continue
            received = time.time()
            try:
                event = json.loads(message["data"])
            except (TypeError, ValueError):
                continue
            if event.get("event") == "finished":
                heard[event.get("job_id")] = received

    listener = threading.Thread(target=listen, name="bench-pubsub", daemon=True)
    listener.start()
    delays, pubsub_delays = [], []
    try:
        wait_idle(connection, 1, worker)
        with httpx.Client(timeout=30) as http:
            for _ in range(samples):
                job_id = http.post(f"{base}/api/jobs", json={"name": "sleep", "args": [0.2]}).json()["id"]
                with http.stream("GET", f"{base}/api/jobs/{job_id}/events") as stream:
                    for line in stream.iter_lines():
                        if line.startswith("data:") and '"finished"' in line:
                            arrived = time.time()
                            if json.loads(line[5:]).get("event") == "finished":
                                break
                ended = str_to_date(connection.hget(f"rq:job:{job_id}", "ended_at")).timestamp()
                deadline = time.monotonic() + 10
                while job_id not in heard:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the pub/sub subscriber never heard job {job_id} finish")
                    time.sleep(0.001)
                delays.append((arrived - ended) * 1000)
                pubsub_delays.append((heard[job_id] - ended) * 1000)
    finally:
        stop.set()
        listener.join(5)
        pubsub.close()
        worker.stop()
        web.stop()
    return {
        "p50_ms": percentile(delays, 0.5),
        "p99_ms": percentile(delays, 0.99),
        "pubsub_p50_ms": percentile(pubsub_delays, 0.5),
        "pubsub_p99_ms": percentile(pubsub_delays, 0.99),
        "samples": len(delays),
    }
