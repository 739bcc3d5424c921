"""Redis's side of a drain: `python -m bench.redis_cost [--jobs 2000] [--processes 1]`.

Submits N `add` jobs through the service, resets Redis's statistics, lets `worker.py` drain
them and prints INFO commandstats per job: how many of each command STEP issues and the
microseconds Redis spends in each. The EVALSHA line is the whole script, the commands it calls
included; the difference is Lua calling into Redis.
"""

from __future__ import annotations

import argparse
import time

from tests.servers import RedisServer, start_worker
from webapp import create_app
from webapp.service.submission import SubmitRequest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=1)
    options = parser.parse_args()
    server = RedisServer().start()
    try:
        service = create_app({"REDIS_URL": server.url, "SUBMIT_RATE_LIMIT": "", "LOG_LEVEL": "WARNING"}).extensions[
            "jobsvc"
        ]
        connection = server.client()
        for number in range(options.jobs):
            service.enqueue([service.plan(SubmitRequest(name="add", args=[number, 1]))], None)
        connection.config_resetstat()
        worker = start_worker(server.url, "--processes", str(options.processes))
        try:
            while connection.llen("rq:queue:default") or connection.zcard("rq:wip:default"):
                time.sleep(0.05)
            time.sleep(0.3)
            stats = connection.info("commandstats")
        finally:
            worker.stop()
        print(f"{'command':28s} {'per job':>8s} {'µs per job':>11s}")
        for name, row in sorted(stats.items(), key=lambda item: -item[1]["usec"]):
            per_job = row["calls"] / options.jobs
            if per_job >= 0.5:
                print(f"{name.removeprefix('cmdstat_'):28s} {per_job:8.2f} {row['usec'] / options.jobs:11.2f}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
