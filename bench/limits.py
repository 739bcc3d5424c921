"""Limits per key: what they cost the jobs that carry none, and how jobs sharing one key drain.

Run: `python -m bench.limits [--rounds 3] [--jobs 2000]` (also part of `make bench`). Four
drains of N trivial `add` jobs through the service's worker, measured as bench/drain.py does
(the jobs are staged, the workers go idle, one MULTI releases the jobs, the clock runs until
every result is stored), interleaved round by round so the machine's load hits all alike:

- `plain`: 2 worker processes, one of them held by a `sleep` job without a limit;
- `plain_limit_in_flight`: the same, but the held job carries a limit (concurrency 1) and 50
  more jobs of its key are parked: the limits code is live while the `add` jobs (no limit) drain;
- `one_key_c4`: 6 worker processes, all N jobs share one key with concurrency 4 (so claims
  park jobs and every finish wakes one);
- `no_key_6`: the same 6 processes and N jobs without a limit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from bench import drain as drain_module
from bench.util import Progress, RedisCounters, median, tree_cpu, wait_until
from tests.servers import RedisServer
from webapp.store import keys

HOLD_SECONDS = 600.0


def stage(connection: Redis, n: int, limit: dict | None) -> list[tuple[str, int]]:
    """N `add` jobs written as the service writes them (with the limit in their meta), staged."""
    queue = Queue("default", connection=connection, serializer=JSONSerializer)
    meta = {"name": "add", **({"limit": limit} if limit else {})}
    expected = []
    for start in range(0, n, 500):
        with connection.pipeline() as pipe:
            for i in range(start, min(n, start + 500)):
                job = queue.enqueue_call(func="jobs.basic.add", args=(i, 1), result_ttl=3600, meta=meta, pipeline=pipe)
                expected.append((job.id, i + 1))
            pipe.execute()
    connection.rename(queue.key, drain_module.STAGING)
    return expected


def hold_one_worker(connection: Redis, limited: bool) -> None:
    """Occupy one worker process with a long `sleep` job (on `low`); with `limited`, the job holds
    its key's only slot and 50 more jobs of that key end up parked."""
    queue = Queue("low", connection=connection, serializer=JSONSerializer)
    meta = {"name": "sleep", **({"limit": {"key": "held", "concurrency": 1}} if limited else {})}
    for _ in range(51 if limited else 1):
        queue.enqueue_call(func="jobs.basic.sleep", args=(HOLD_SECONDS,), timeout=3660, meta=meta)
        connection.rpush(keys.wake("low"), 1)
    wait_until(lambda: connection.zcard(keys.registry("started", "low")) == 1, 30, what="the held job started")
    if limited:
        wait_until(lambda: connection.llen(keys.limit_parked("held")) == 50, 30, what="50 jobs parked")


def drain(url: str, variant: str, n: int) -> dict:
    connection = Redis.from_url(url)
    connection.flushall()
    processes = 6 if variant in ("one_key_c4", "no_key_6") else 2
    limit = {"key": "shared", "concurrency": 4} if variant == "one_key_c4" else None
    expected = stage(connection, n, limit)
    worker = drain_module.start_worker("service", url, processes, WORKER_SHUTDOWN_GRACE="1")
    try:
        drain_module.wait_idle(connection, processes, worker)
        if variant.startswith("plain"):
            hold_one_worker(connection, limited=variant == "plain_limit_in_flight")
            drain_module.wait_idle(connection, processes - 1, worker)
        time.sleep(0.2)
        counters = RedisCounters(connection)
        before = counters.snapshot()
        cpu_before = tree_cpu(worker.pid)
        started = time.perf_counter()
        with connection.pipeline() as pipe:
            pipe.rename(drain_module.STAGING, keys.queue("default"))
            pipe.rpush(keys.wake("default"), 1)
            pipe.execute()
        polls = 0
        deadline = time.monotonic() + max(120.0, n / 20)
        while connection.zcard(keys.registry("finished", "default")) < n:
            polls += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"{variant}: the drain did not end")
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu(worker.pid) - cpu_before
        # the measuring client's own: the MULTI (3 commands, 1 read) and one ZCARD per poll
        delta = RedisCounters.delta(before, counters.snapshot(), own_reads=polls + 3, own_commands=polls + 6)
        drain_module.verify(connection, "service", expected)
    finally:
        worker.stop()
    return {
        "variant": variant,
        "processes": processes,
        "jobs": n,
        "seconds": elapsed,
        "jobs_per_s": n / elapsed,
        "round_trips_per_job": delta["reads"] / n,
        "commands_per_job": delta["commands"] / n,
        "cpu_ms_per_job": cpu * 1000 / n,
        "redis_cpu_ms_per_job": delta["cpu"] * 1000 / n,
    }


VARIANTS = ("plain", "plain_limit_in_flight", "one_key_c4", "no_key_6")


def run(url: str, rounds: int, n: int, progress: Progress | None = None, variants: tuple[str, ...] = VARIANTS) -> dict:
    """Every variant `rounds` times, interleaved (every other round in reverse order, so no variant
    always follows another); medians per variant. Each drain announces itself on `progress`."""
    progress = progress or Progress()
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    for round_no in range(rounds):
        for variant in variants if round_no % 2 == 0 else reversed(variants):
            with progress.phase("limits", round_no + 1, rounds, f"{variant}, N={n}") as step:
                result = drain(url, variant, n)
                step.result(f"{result['jobs_per_s']:,.0f} jobs/s")
            runs[variant].append(result)
    fields = ("jobs_per_s", "round_trips_per_job", "commands_per_job", "cpu_ms_per_job", "redis_cpu_ms_per_job")
    return {
        variant: {"median": {field: median([r[field] for r in results]) for field in fields}, "runs": results}
        for variant, results in runs.items()
    }


def report(data: dict) -> str:
    lines = ["limits per key: drains of trivial `add` jobs (medians)"]
    for variant, value in data.items():
        m = value["median"]
        lines.append(
            f"  {variant:<24} {m['jobs_per_s']:7.0f} jobs/s  {m['round_trips_per_job']:.2f} round trips/job  "
            f"{m['commands_per_job']:.1f} commands/job  {m['cpu_ms_per_job']:.3f} worker CPU ms/job  "
            f"{m['redis_cpu_ms_per_job']:.3f} Redis CPU ms/job"
        )
    if "plain" in data and "plain_limit_in_flight" in data:
        plain, live = data["plain"]["median"], data["plain_limit_in_flight"]["median"]
        lines.append(
            "  no-limit jobs, a limited key in flight / none: "
            f"{live['jobs_per_s'] / plain['jobs_per_s']:.2f} × the rate, "
            f"{live['cpu_ms_per_job'] / plain['cpu_ms_per_job']:.2f} × the worker CPU per job"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    options = parser.parse_args(argv)
    variants = tuple(options.variants.split(","))
    server = RedisServer().start()
    try:
        data = run(server.url, options.rounds, options.jobs, Progress(), variants)
    finally:
        server.cleanup()
    print(report(data))
    print(json.dumps({variant: value["median"] for variant, value in data.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
