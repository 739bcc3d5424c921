"""A frozen Redis (process stopped with SIGSTOP: TCP still accepts, nothing answers).

Every route that needs Redis answers a JSON 503 with Retry-After within a second (submit,
read, list, both event streams, /healthz), through a real gunicorn. A submission sent while
Redis is frozen may still land when Redis resumes (it was on the wire): resending it with the
same Idempotency-Key is safe, and nothing is ever written twice.
"""

from __future__ import annotations

import os
import signal
import time

import httpx

from tests.faults.faultkit import report
from tests.servers import start_web
from webapp.store import keys

ROUTES = ("submit", "read", "list", "job events", "all events", "healthz")


def request(base: str, route: str, job_id: str, key: str) -> httpx.Response:
    if route == "submit":
        return httpx.post(
            base + "/api/jobs", json={"name": "add", "args": [1, 2]}, headers={"Idempotency-Key": key}, timeout=5
        )
    path = {
        "read": f"/api/jobs/{job_id}",
        "list": "/api/jobs",
        "job events": f"/api/jobs/{job_id}/events",
        "all events": "/api/events",
        "healthz": "/healthz",
    }[route]
    with httpx.stream("GET", base + path, timeout=5) as response:
        response.read() if response.status_code != 200 else None
        return response


def test_a_frozen_redis_gets_a_json_503_within_a_second_and_no_duplicate(redis_server, redis_conn):
    web, base = start_web(redis_server.url)
    frozen = False
    try:
        job_id = httpx.post(base + "/api/jobs", json={"name": "add", "args": [1, 1]}, timeout=5).json()["id"]
        for route in ROUTES:  # every web process has its connections warm
            for _ in range(4):
                assert request(base, route, job_id, "warm-up").status_code in (200, 202), route
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        frozen = True
        timings: dict[str, float] = {}
        sent_keys = []
        for attempt in range(3):
            for route in ROUTES:
                key = f"frozen-{attempt}-{route}"
                began = time.monotonic()
                response = request(base, route, job_id, key)
                took = time.monotonic() - began
                timings[route] = max(timings.get(route, 0.0), took)
                assert response.status_code == 503, (route, response.status_code)
                assert response.headers["content-type"].startswith("application/json"), route
                assert "Retry-After" in response.headers, route
                if route == "submit":
                    sent_keys.append(key)
        assert max(timings.values()) < 1.0, timings

        os.kill(redis_server.process.pid, signal.SIGCONT)
        frozen = False
        # Resend every refused submission with its key: each makes at most one job in all.
        outcomes = [request(base, "submit", job_id, key).status_code for key in sent_keys]
        assert set(outcomes) <= {200, 202}, outcomes
        queued = redis_conn.lrange(keys.queue("default"), 0, -1)
        assert len(queued) == len(set(queued)) == 1 + 1 + len(sent_keys)  # first job, warm-up key, resends
        report(
            "frozen_redis",
            worst_seconds={route: round(value, 3) for route, value in timings.items()},
            landed_while_frozen=outcomes.count(200),
            resent=len(sent_keys),
            duplicates=len(queued) - len(set(queued)),
        )
    finally:
        if frozen:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        web.stop()
