"""(i) The routes' own CPU, in-process and pinned: where a submission's and a job read's time goes.

Run: .venv/bin/python -m bench.route_cost [--rounds 9] [--requests 300]

gunicorn's figures (section a) carry the HTTP server's costs and swing ± 20 % from run to run on
a shared 2-core VM, more than most changes to a route. This section calls the Flask app directly
(a prepared WSGI environ, no HTTP server) for the same five routes, then times the steps a
submission and a job read are made of. This process and its private Redis are pinned to one
core: on a VM a round trip between two cores costs the caller some 30 µs more CPU than on one
(the idle core's wake-up), and which of the two a call gets is the scheduler's whim. Pinned,
the figures repeat within a few percent. Each figure is the minimum over rounds (the least
disturbed) of this process's CPU time per call; Redis's own work is section (h)'s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from werkzeug.test import EnvironBuilder

from bench.util import Progress
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps({"name": "add", "args": [1, 2]}).encode()
ROUTES = {  # name: (label, method, path, body); {job} is a finished job's id
    "plain": ("POST /bench/plain (JSON only)", "POST", "/bench/plain", BODY),
    "lpush": ("POST /bench/lpush (one LPUSH)", "POST", "/bench/lpush", BODY),
    "enqueue": ("POST /api/jobs", "POST", "/api/jobs", BODY),
    "get": ("GET /bench/get (one GET)", "GET", "/bench/get", None),
    "status": ("GET /api/jobs/<id>", "GET", "/api/jobs/{job}", None),
}


def per_call_us(work: Callable[[], object], calls: int, rounds: int) -> float:
    """This process's CPU time per call, µs: the minimum over `rounds` rounds of `calls` calls."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            work()
        best = min(best, (time.process_time() - started) / calls)
    return best * 1e6


class WsgiCaller:
    """Calls an app's WSGI entry with a prepared environ, as a server would, and reads the body."""

    def __init__(self, app, method: str, path: str, body: bytes | None):
        self.app = app
        self.body = body
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.environ = EnvironBuilder(path=path, method=method, data=body, headers=headers).get_environ()
        self.status = ""

    def _start_response(self, status, headers, exc_info=None):
        self.status = status

    def __call__(self) -> bytes:
        environ = dict(self.environ)
        if self.body is not None:
            environ["wsgi.input"] = io.BytesIO(self.body)
        chunks = self.app.wsgi_app(environ, self._start_response)
        try:
            return b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()


def _finished_job(app, redis_url: str) -> str:
    """A job submitted through the API and run by a worker, for the job read to read."""
    reply = WsgiCaller(app, "POST", "/api/jobs", BODY)()
    job_id = json.loads(reply)["id"]
    env = {**os.environ, "REDIS_URL": redis_url}
    subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, check=True, capture_output=True)
    return job_id


@contextlib.contextmanager
def replaced(owner: object, name: str, stand_in: object):
    """`owner.name` is `stand_in` inside the block (an instance attribute over a method, or in
    place of an instance attribute, which is put back)."""
    own = vars(owner)
    missing = object()
    before = own.get(name, missing)
    setattr(owner, name, stand_in)
    try:
        yield
    finally:
        if before is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, before)


def _knockouts(app, job_id: str) -> dict[str, tuple[str, str, Callable[[], contextlib.AbstractContextManager]]]:
    """Each piece of a submission and of a job read, replaced by what it returned once: the
    route's CPU without it, against the route's own, is what it costs where it runs. (Timed on
    its own in a tight loop a piece runs with warm caches and costs half as much or less.)"""
    from redis.commands.core import Script

    from webapp.service.submit import Submission
    from webapp.store import jobreads
    from webapp.store.admission import Outcome

    service = app.extensions["jobsvc"]
    submitter = service.submitter
    writer = submitter.writer
    entry = {"id": job_id, "name": "add", "queue": "default", "status": "queued"}
    redis = app.extensions["redis"]
    raw = jobreads._read_raw(redis, job_id, None)
    view = service.describe(job_id, None)

    def no_round_trip():  # the script's arguments are still built
        return replaced(writer, "run", lambda commands, admission: (writer.argv(commands, admission), Outcome("ok"))[1])

    def no_writes():
        stack = contextlib.ExitStack()
        stack.enter_context(replaced(writer, "run", lambda commands, admission: Outcome("ok")))
        stack.enter_context(replaced(submitter, "_write", lambda *args, **options: dict(entry)))
        return stack

    no_op = Script(None, b"return {'ok'}")
    return {
        "redis_work": (
            "enqueue",
            "the submit script's work in Redis (a no-op script, same arguments)",
            lambda: replaced(writer, "script", no_op),
        ),
        "round_trip": ("enqueue", "the submit script's round trip (packing, send, reply)", no_round_trip),
        "writes": ("enqueue", "that, and the job's writes built (hash, event, index)", no_writes),
        "service": (
            "enqueue",
            "the service's whole enqueue",
            lambda: replaced(service, "enqueue", lambda *args, **options: Submission([entry])),
        ),
        "one_lpush": (
            "enqueue",
            "the service's enqueue, one LPUSH in its place (a floor)",
            lambda: replaced(
                service, "enqueue", lambda *args, **options: (redis.lpush("bench:lpush", BODY), Submission([entry]))[1]
            ),
        ),
        "read": (
            "status",
            "the job read's round trip (one EVALSHA)",
            lambda: replaced(jobreads, "_read_raw", lambda connection, job_id, results: raw),
        ),
        "view": (
            "status",
            "the whole job view (read, decode, build)",
            lambda: replaced(service, "describe", lambda *args: view),
        ),
        "one_get": (
            "status",
            "the job read, one GET in its place (a floor)",
            lambda: replaced(
                jobreads, "_read_raw", lambda connection, job_id, results: (redis.get("bench:value"), raw)[1]
            ),
        ),
    }


def measure(rounds: int = 9, requests: int = 300, progress: Progress | None = None, apart: bool = False) -> dict:
    """CPU per request of the five routes, and of the two service routes without each piece.
    `apart`: Redis on another core than this process (when there is one), to compare."""
    from bench.app import create_bench_app

    progress = progress or Progress()
    server = RedisServer().start()
    affinity = os.sched_getaffinity(0)
    core = min(affinity)
    redis_core = max(affinity) if apart else core
    try:
        app = create_bench_app({"REDIS_URL": server.url, "SUBMIT_RATE_LIMIT": "", "TRACING": "off"})
        job_id = _finished_job(app, server.url)
        app.extensions["redis"].set("bench:value", "x" * 64)
        os.sched_setaffinity(0, {core})
        os.sched_setaffinity(server.process.pid, {redis_core})
        callers = {}
        for name, (label, method, path, body) in ROUTES.items():
            callers[name] = WsgiCaller(app, method, path.format(job=job_id), body)
            callers[name]()
            if not callers[name].status.startswith("20"):
                raise RuntimeError(f"{label} answered {callers[name].status}")
        routes = {}
        for name, (label, *_rest) in ROUTES.items():
            with progress.phase("route-cost", 1, 2, f"{label}, {rounds} rounds × {requests} requests") as step:
                routes[name] = per_call_us(callers[name], requests, rounds)
                step.result(f"{routes[name]:.0f} µs CPU per request")
        knockouts = _knockouts(app, job_id)
        without = {}
        labels = {}
        with progress.phase("route-cost", 2, 2, f"the service routes without each piece, {rounds} rounds") as step:
            for name, (route, label, stand_in) in knockouts.items():
                labels[name] = (route, label)
                with stand_in():
                    without[name] = per_call_us(callers[route], requests, rounds)
            step.result(", ".join(f"{name} {value:.0f} µs" for name, value in without.items()))
    finally:
        os.sched_setaffinity(0, affinity)
        server.cleanup()
    return {
        "core": core,
        "redis_core": redis_core,
        "rounds": rounds,
        "requests": requests,
        "routes": routes,
        "without": without,
        "labels": labels,
    }


def report(data: dict) -> list[str]:
    routes, without = data["routes"], data["without"]
    lines = [
        "",
        f"(i) the routes' own CPU, in-process (no HTTP server), this process pinned to core {data['core']}, its "
        f"Redis to core {data.get('redis_core', data['core'])}: µs per request, minimum of {data['rounds']} rounds × "
        f"{data['requests']}",
    ]
    for name, (label, *_rest) in ROUTES.items():
        lines.append(f"  {label:34} {routes[name]:7.0f}")
    lines.append(
        f"  POST /api/jobs costs {routes['enqueue'] - routes['lpush']:.0f} µs more than the one-LPUSH route "
        f"(× {routes['enqueue'] / routes['lpush']:.2f}), GET /api/jobs/<id> {routes['status'] - routes['get']:.0f} µs "
        f"more than the one-GET route (× {routes['status'] / routes['get']:.2f}); where it goes, the route without "
        f"each piece (the piece replaced by what it returned once):"
    )
    for name, (route, label) in data["labels"].items():
        saved = round(routes[route] - without[name]) + 0  # + 0: no '-0'
        lines.append(f"    {ROUTES[route][0]:18} without {label:66} {without[name]:5.0f}  (it costs {saved:4.0f})")
    lines.append(
        f"  floors: with one LPUSH for its whole enqueue POST /api/jobs would cost {without['one_lpush']:.0f} µs "
        f"(× {without['one_lpush'] / routes['lpush']:.2f} the LPUSH route); with one GET for its read GET "
        f"/api/jobs/<id> {without['one_get']:.0f} (× {without['one_get'] / routes['get']:.2f} the GET route)"
    )
    rest = without["service"] - routes["plain"]
    lines.append(
        f"  with no enqueue at all POST /api/jobs still costs {rest:.0f} µs more than the plain route (the API's "
        f"hooks, body checks, planning, the answer's URL and JSON); one LPUSH costs the LPUSH route "
        f"{routes['lpush'] - routes['plain']:.0f}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--apart", action="store_true", help="Redis on another core than this process, to compare")
    options = parser.parse_args()
    os.environ.setdefault("TRACING", "off")
    print("\n".join(report(measure(options.rounds, options.requests, apart=options.apart))))


if __name__ == "__main__":
    main()
