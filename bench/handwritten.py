"""The hand-written baseline worker: BRPOP a JSON job, run it, SET its result (2 round trips).

`python -m bench.handwritten REDIS_URL` — the practical ceiling of one Python process.
"""

from __future__ import annotations

import json
import signal
import sys

from redis import Redis

QUEUE = "bench:hw:queue"
RESULT_PREFIX = "bench:hw:result:"


def main(url: str) -> None:
    connection = Redis.from_url(url)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        popped = connection.brpop([QUEUE], timeout=5)
        if popped is None:
            continue
        job = json.loads(popped[1])
        result = job["a"] + job["b"]
        connection.set(RESULT_PREFIX + job["id"], json.dumps(result), ex=3600)


if __name__ == "__main__":
    main(sys.argv[1])
