"""A submission's cost: one guarded EVALSHA (the service) against RQ's usual pipelined enqueue.

Run: .venv/bin/python -m bench.submit_cost [--rounds 60] [--per-round 50]

Both variants validate the same way and write the same things (job hash, queue push, `queued`
event, listing index). The baseline is what the service did before: `enqueue_call` on a redis-py
pipeline plus the event script, executed as MULTI/EXEC; redis-py first sends SCRIPT EXISTS for
the scripts on the pipeline, so that is two round trips where the service makes one. Rounds
alternate between the variants on one private Redis, so machine load affects both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

from tests.servers import RedisServer
from webapp import create_app
from webapp.service.submission import SubmitRequest
from webapp.store import listing


def pipelined_submit(service, number: int) -> None:
    """The baseline: RQ's enqueue on a transactional pipeline, event and index on the same one."""
    plan = service.plan(SubmitRequest(name="add", args=[number, 1]))
    with service.connection.pipeline() as pipe:
        job = plan.queue.enqueue_call(
            func=plan.job_type.import_path,
            kwargs=plan.call_kwargs,
            meta={"name": plan.job_type.name},
            pipeline=pipe,
            **plan.options,
        )
        service.events.append(
            "queued", job_id=job.id, name=plan.job_type.name, queue=plan.queue.name, status="queued", pipeline=pipe
        )
        listing.index_job(pipe, job)
        pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--per-round", type=int, default=50)
    options = parser.parse_args()
    server = RedisServer().start()
    try:
        service = create_app({"REDIS_URL": server.url, "TESTING": True}).extensions["jobsvc"]
        variants = {
            "one EVALSHA (service)": lambda number: service.submit("add", [number, 1]),
            "RQ pipeline (baseline)": lambda number: pipelined_submit(service, number),
        }
        for submit in variants.values():  # warm up: scripts loaded, server version known
            submit(0)
        timings: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(options.rounds):
            for label, submit in variants.items():
                started = time.perf_counter()
                for number in range(options.per_round):
                    submit(number)
                timings[label].append((time.perf_counter() - started) / options.per_round)
            server.client().flushall()
    finally:
        server.cleanup()
    base = statistics.median(timings["RQ pipeline (baseline)"])
    print(f"{options.rounds} rounds x {options.per_round} submissions per variant, in-process, private Redis")
    for label, values in timings.items():
        median = statistics.median(values)
        p99 = statistics.quantiles(values, n=100)[98]
        line = f"  {label:<24} median {median * 1e6:6.0f} us  p99 of round means {p99 * 1e6:6.0f} us"
        print(f"{line}  ratio {median / base:.2f}")


if __name__ == "__main__":
    main()
