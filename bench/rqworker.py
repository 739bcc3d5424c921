"""RQ's own workers as baselines: `python -m bench.rqworker REDIS_URL simple|fork`.

Configured as a user of plain RQ would run them on the service's jobs: the JSON
serializer, the `default` queue, no scheduler.
"""

from __future__ import annotations

import sys

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.serializers import JSONSerializer


def main(url: str, kind: str) -> None:
    connection = Redis.from_url(url)
    worker_class = SimpleWorker if kind == "simple" else Worker
    queue = Queue("default", connection=connection, serializer=JSONSerializer)
    worker = worker_class([queue], connection=connection, serializer=JSONSerializer)
    worker.work(logging_level="INFO", with_scheduler=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
