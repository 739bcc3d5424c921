"""(b, e) Drain rate: N trivial `add` jobs through each kind of worker, measured alike.

The jobs are written first and their queue list is parked under another key; the workers
start and go idle (blocked on Redis); then one MULTI renames the list back (and, for the
service's worker, pushes one wake token, as the web does on every submission), and the
clock runs until every result is stored. Round trips are Redis read events
(`total_reads_processed`), commands are `total_commands_processed`, both minus the
measuring client's own; CPU is user + system time of the worker's whole process tree.
"""

from __future__ import annotations

import json
import sys
import time

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from bench import handwritten
from bench.util import RedisCounters, tree_cpu, wait_until
from tests.servers import ServiceProcess, service_env
from webapp.store import keys

STAGING = "bench:staging"
KINDS = {
    "handwritten": "hand-written BRPOP/SET",
    "service": "service worker",
    "rq-simple": "RQ SimpleWorker",
    "rq-fork": "RQ Worker (fork)",
}


def worker_command(kind: str, url: str, processes: int) -> list[str]:
    if kind == "service":
        return [sys.executable, "worker.py", "--processes", str(processes)]
    if kind == "handwritten":
        return [sys.executable, "-m", "bench.handwritten", url, str(processes)]
    return [sys.executable, "-m", "bench.rqworker", url, kind.removeprefix("rq-")]


def start_worker(kind: str, url: str, processes: int = 1, **env: str) -> ServiceProcess:
    return ServiceProcess(worker_command(kind, url, processes), service_env(url, **env), f"bench-{kind}")


def wait_idle(connection: Redis, blocked: int, process: ServiceProcess, timeout: float = 60) -> None:
    """Until `blocked` clients wait in a blocking pop: the workers are up and idle."""

    def idle():
        if process.process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{process.output()[-3000:]}")
        return connection.info("clients")["blocked_clients"] >= blocked

    wait_until(idle, timeout, what="idle workers")


def enqueue_rq_jobs(connection: Redis, n: int, sleep: float | None = None) -> list[tuple[str, object]]:
    """N `add` jobs (or `sleep` jobs) as the service writes them (JSON serializer, meta name);
    returns (id, expected return value) pairs."""
    queue = Queue("default", connection=connection, serializer=JSONSerializer)
    expected = []
    for start in range(0, n, 500):
        with connection.pipeline() as pipe:
            for i in range(start, min(n, start + 500)):
                if sleep is None:
                    func, args, name, want = "jobs.basic.add", (i, 1), "add", i + 1
                else:
                    func, args, name, want = "jobs.basic.sleep", (sleep,), "sleep", {"slept": sleep}
                job = queue.enqueue_call(func=func, args=args, result_ttl=3600, meta={"name": name}, pipeline=pipe)
                expected.append((job.id, want))
            pipe.execute()
    connection.rename(queue.key, STAGING)
    return expected


def enqueue_handwritten_jobs(connection: Redis, n: int) -> list[tuple[str, int]]:
    expected = []
    for start in range(0, n, 1000):
        with connection.pipeline() as pipe:
            for i in range(start, min(n, start + 1000)):
                job_id = f"hw{i}"
                pipe.lpush(handwritten.QUEUE, json.dumps({"id": job_id, "a": i, "b": 1}))
                expected.append((job_id, i + 1))
            pipe.execute()
    connection.rename(handwritten.QUEUE, STAGING)
    return expected


def verify(connection: Redis, kind: str, expected: list[tuple[str, int]]) -> int:
    """Every job's result is there and right; returns how many were checked."""
    if kind == "handwritten":
        with connection.pipeline(transaction=False) as pipe:
            for job_id, _ in expected:
                pipe.get(handwritten.RESULT_PREFIX + job_id)
            values = pipe.execute()
        pairs = zip(expected, values, strict=True)
        wrong = [job_id for (job_id, want), got in pairs if got is None or int(got) != want]
    else:
        jobs = Job.fetch_many([job_id for job_id, _ in expected], connection=connection, serializer=JSONSerializer)
        wrong = [
            job_id
            for (job_id, want), job in zip(expected, jobs, strict=True)
            if job is None or job.get_status() != "finished" or job.return_value() != want
        ]
    if wrong:
        raise AssertionError(f"{kind}: {len(wrong)} of {len(expected)} jobs lack their right result, e.g. {wrong[:3]}")
    return len(expected)


def drain(
    url: str, kind: str, n: int, processes: int = 1, worker_env: dict | None = None, sleep: float | None = None
) -> dict:
    """One measured drain of `n` jobs; returns rates and per-job costs."""
    connection = Redis.from_url(url)
    connection.flushall()
    if kind == "handwritten":
        expected = enqueue_handwritten_jobs(connection, n)
    else:
        expected = enqueue_rq_jobs(connection, n, sleep)
    worker = start_worker(kind, url, processes, **(worker_env or {}))
    try:
        threads = int((worker_env or {}).get("WORKER_THREADS", "1"))
        wait_idle(connection, processes * threads, worker)
        time.sleep(0.2)  # let start-up maintenance settle
        counters = RedisCounters(connection)
        target = handwritten.QUEUE if kind == "handwritten" else Queue("default", connection=connection).key
        if kind == "handwritten":
            base = connection.dbsize() - 1 + n  # the list key goes away once drained

            def count():
                return connection.dbsize() - base + n
        else:
            finished_key = "rq:finished:default"
            failed_key = "rq:failed:default"

            def count():
                with connection.pipeline(transaction=False) as pipe:
                    pipe.zcard(finished_key)
                    pipe.zcard(failed_key)
                    return sum(pipe.execute())

        before = counters.snapshot()
        cpu_before = tree_cpu(worker.pid)
        started = time.perf_counter()
        with connection.pipeline() as pipe:
            pipe.rename(STAGING, target)
            if kind == "service":
                pipe.rpush(keys.wake("default"), 1)
            pipe.execute()
        polls = 0
        deadline = time.monotonic() + max(120.0, n / 20)
        while True:
            polls += 1
            if count() >= n:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind}: only {count()} of {n} jobs done")
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu(worker.pid) - cpu_before
        after = counters.snapshot()
        own_commands = 3 + (1 if kind == "service" else 0) + polls * (1 if kind == "handwritten" else 2) + 1
        delta = RedisCounters.delta(before, after, own_reads=1 + polls + 1, own_commands=own_commands)
        checked = verify(connection, kind, expected)
    finally:
        worker.stop()
    top = sorted(delta["per_command"].items(), key=lambda item: -item[1])[:6]
    return {
        "kind": kind,
        "processes": processes,
        "jobs": n,
        "verified": checked,
        "seconds": elapsed,
        "jobs_per_s": n / elapsed,
        "round_trips_per_job": delta["reads"] / n,
        "commands_per_job": delta["commands"] / n,
        "cpu_ms_per_job": cpu * 1000 / n,
        "redis_cpu_ms_per_job": delta["cpu"] * 1000 / n,
        "top_commands_per_job": {name: round(calls / n, 2) for name, calls in top},
    }
