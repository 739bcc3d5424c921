"""What the listing index adds to a submission: the service's submit path with and without its index writes.

Run: .venv/bin/python -m bench.index_cost [--rounds 80] [--per-round 50]
Rounds alternate between the two variants on one private Redis, so load affects both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

from tests.servers import RedisServer
from webapp import create_app
from webapp.service.submission import SubmitRequest
from webapp.store import listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=80)
    parser.add_argument("--per-round", type=int, default=50)
    options = parser.parse_args()
    server = RedisServer().start()
    indexed = listing.index_commands
    variants = {"with the index": indexed, "without (baseline)": lambda *args, **kwargs: []}
    timings: dict[str, list[float]] = {label: [] for label in variants}
    try:
        service = create_app({"REDIS_URL": server.url, "TESTING": True}).extensions["jobsvc"]
        for _ in range(options.rounds):
            for label, index_commands in variants.items():
                listing.index_commands = index_commands
                started = time.perf_counter()
                for number in range(options.per_round):
                    service.enqueue([service.plan(SubmitRequest(name="add", args=[number, 1]))], None)
                timings[label].append((time.perf_counter() - started) / options.per_round)
    finally:
        listing.index_commands = indexed
        server.cleanup()
    for label, values in timings.items():
        print(f"{label:>20}: median {statistics.median(values) * 1e6:6.0f} us per submit")
    ratio = statistics.median(timings["with the index"]) / statistics.median(timings["without (baseline)"])
    print(f"ratio (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
