"""Where enqueue → result goes, warm and after the worker sat idle: timestamps along the path.

`python -m bench.idle_profile [--warm 150] [--idle 12] [--idle-seconds 2]` starts a private
Redis and one FastWorker process whose wake-up, STEP calls and job run are timestamped (this
module, run as `python -m bench.idle_profile --worker`, wraps the worker's methods; the
product's code is unchanged), submits jobs one at a time as `bench.latency` does (the
service's own submit path, then polling EXISTS on the result) and prints the median of each
hop, in ms:

    submit → woken       the client plans and sends the submit; Redis runs it, ends the
                         worker's BLPOP on the wake list and runs the claiming STEP queued
                         behind it; both replies reach the worker
    job restored         RQ's Job (and Execution) built from the claim's reply
    restored → ran       the job run
    ran → finish sent    STEP's finish arguments
    finish STEP          round trip of the finishing STEP (the result is written here)
    total                submit start → the client sees the result

Both processes use this machine's clock (time.time()).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

WORKER_LOG_ENV = "BENCH_IDLE_PROFILE_LOG"


def instrumented_worker() -> int:
    """The worker entry point with FastWorker's wait, STEP and run timestamped."""
    from webapp import create_app
    from webapp.worker import fastworker
    from webapp.worker.main import main

    cls = fastworker.FastWorker
    log: list = []
    claimed, call_step, run_claimed, teardown = cls._claimed, cls._call_step, cls._run_claimed, cls.teardown

    def timed_claimed(self, reply, execution_id, moment, began):
        woken = moment is None and len(reply) > 2  # a job claimed behind the idle wait
        if woken:
            log.append(("woken", time.time()))
        job = claimed(self, reply, execution_id, moment, began)
        if woken:
            log.append(("restored", time.time()))
        return job

    def timed_step(self, args):
        log.append(("step_sent", time.time()))
        reply = call_step(self, args)
        log.append(("step_back", time.time()))
        return reply

    def timed_run(self, *args):
        pending = run_claimed(self, *args)
        log.append(("ran", time.time()))
        return pending

    def dump_then_teardown(self):
        with open(os.environ[WORKER_LOG_ENV], "w") as out:
            json.dump(log, out)
        return teardown(self)

    cls._claimed, cls._call_step, cls._run_claimed = timed_claimed, timed_step, timed_run
    cls.teardown = dump_then_teardown
    return main(create_app)


HOPS = ("submit → woken", "job restored", "restored → ran", "ran → finish sent", "finish STEP")


def hops(log: list, started: float, seen: float) -> dict[str, float]:
    """The job submitted at `started`: its hops from the worker's log (the first wake-up after it)."""
    first = next(i for i, entry in enumerate(log) if entry[0] == "woken" and entry[1] >= started)
    names = [entry[0] for entry in log[first:]]
    at = [entry[1] for entry in log[first:]]
    ran = names.index("ran")
    finish_sent = names.index("step_sent", ran)
    moments = [started, at[0], at[names.index("restored")], at[ran], at[finish_sent], at[finish_sent + 1]]
    result = {name: (moments[i + 1] - moments[i]) * 1000 for i, name in enumerate(HOPS)}
    result["total"] = (seen - started) * 1000
    return result


def profile(warm: int, idle: int, idle_seconds: float) -> dict[str, dict[str, float]]:
    from redis import Redis
    from rq.results import Result

    from bench.drain import service_env, wait_idle
    from tests.servers import RedisServer, ServiceProcess
    from webapp import create_app
    from webapp.service.submission import SubmitRequest

    server = RedisServer().start()
    log_path = tempfile.mkstemp(prefix="jobsvc-idle-profile-", suffix=".json")[1]
    env = service_env(server.url, **{WORKER_LOG_ENV: log_path})
    worker = ServiceProcess([sys.executable, "-m", "bench.idle_profile", "--worker"], env, "bench-idle-profile")
    connection = Redis.from_url(server.url)
    samples: dict[str, list[tuple[float, float]]] = {"warm": [], "idle": []}
    try:
        wait_idle(connection, 1, worker)
        service = create_app({"REDIS_URL": server.url, "LOG_LEVEL": "WARNING"}).extensions["jobsvc"]

        def one(i: int) -> tuple[float, float]:
            started = time.time()
            planned = service.plan(SubmitRequest(name="add", args=[i, 1]))
            key = Result.get_key(service.enqueue([planned], None).jobs[0]["id"])
            deadline = time.monotonic() + 30
            while not connection.exists(key):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {i} gave no result in 30 s")
            return started, time.time()

        for i in range(20):
            one(i)
        samples["warm"] = [one(100 + i) for i in range(warm)]
        for i in range(idle):
            time.sleep(idle_seconds)
            samples["idle"].append(one(10_000 + i))
    finally:
        worker.stop()
        server.stop()
    with open(log_path) as source:
        log = json.load(source)
    os.unlink(log_path)
    medians = {}
    for kind, timed in samples.items():
        rows = [hops(log, started, seen) for started, seen in timed]
        medians[kind] = {name: statistics.median(row[name] for row in rows) for name in rows[0]}
        totals = sorted(row["total"] for row in rows)
        medians[kind]["total p99"] = totals[min(len(totals) - 1, int(0.99 * len(totals)))]
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm", type=int, default=150)
    parser.add_argument("--idle", type=int, default=12)
    parser.add_argument("--idle-seconds", type=float, default=2.0)
    options = parser.parse_args()
    if options.worker:
        sys.argv = [sys.argv[0], "--processes", "1"]
        sys.exit(instrumented_worker())
    medians = profile(options.warm, options.idle, options.idle_seconds)
    print(f"{'hop (median ms)':20} {'warm':>7} {'idle':>7}")
    for name in (*HOPS, "total", "total p99"):
        print(f"{name:20} {medians['warm'][name]:7.3f} {medians['idle'][name]:7.3f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
