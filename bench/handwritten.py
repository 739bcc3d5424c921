"""The hand-written baseline worker: BRPOP a JSON job, run it, SET its result (2 round trips).

`python -m bench.handwritten REDIS_URL [PROCESSES]` — the practical ceiling of one Python
process; with PROCESSES > 1 the parent forks that many and stops them on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from redis import Redis

QUEUE = "bench:hw:queue"
RESULT_PREFIX = "bench:hw:result:"


def work(url: str) -> None:
    connection = Redis.from_url(url)
    while True:
        popped = connection.brpop([QUEUE], timeout=5)
        if popped is None:
            continue
        job = json.loads(popped[1])
        result = job["a"] + job["b"]
        connection.set(RESULT_PREFIX + job["id"], json.dumps(result), ex=3600)


def main(url: str, processes: int = 1) -> None:
    if processes == 1:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        work(url)
        return
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            work(url)
        children.append(pid)

    def stop(*_):
        for child in children:
            os.kill(child, signal.SIGTERM)
        for child in children:
            os.waitpid(child, 0)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        signal.pause()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
