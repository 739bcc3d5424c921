"""Where a worker's CPU goes: `python -m bench.profile [--jobs N] [--kind service]`.

Drains N jobs through one worker process while py-spy samples it (only while it holds
the GIL, i.e. runs Python), then prints the share of samples per function, inclusive.
Needs py-spy (requirements-bench.txt) and ptrace rights (root, or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from redis import Redis

from bench.drain import STAGING, enqueue_rq_jobs, start_worker, wait_idle
from bench.util import process_tree
from tests.servers import RedisServer
from webapp.store import keys


def summarize(raw: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        functions = set()
        for frame in stack.split(";"):
            name, _, where = frame.partition(" (")
            functions.add(f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})")
        for function in functions:
            inclusive[function] += samples
    lines = [f"{total} samples (Python running, GIL held)"]
    for frame, samples in inclusive.most_common(top):
        lines.append(f"{samples * 100 / total:5.1f}%  {frame}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--kind", default="service", choices=["service", "rq-simple"])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=45)
    options = parser.parse_args(argv)
    server = RedisServer().start()
    try:
        connection = Redis.from_url(server.url)
        enqueue_rq_jobs(connection, options.jobs)
        worker = start_worker(options.kind, server.url)
        seconds = options.seconds
        descriptor, name = tempfile.mkstemp(prefix="jobsvc-profile-", suffix=".txt")
        os.close(descriptor)
        raw = Path(name)
        try:
            wait_idle(connection, 1, worker)
            pid = process_tree(worker.pid)[-1]  # the job-running process
            command = ["py-spy", "record", "--gil", "-r", "1000", "-f", "raw", "-o", str(raw), "-p", str(pid)]
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / command[0]), *command[1:], "-d", str(max(1, round(seconds)))],
                stdout=subprocess.DEVNULL,
            )
            time.sleep(1)
            with connection.pipeline() as pipe:
                pipe.rename(STAGING, "rq:queue:default")
                pipe.rpush(keys.wake("default"), 1)
                pipe.execute()
            spy.wait()
            print(summarize(raw, options.top))
        finally:
            worker.stop()
            raw.unlink(missing_ok=True)  # py-spy's raw samples: summarized above
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
