"""How long RQ's own mechanisms take to notice a job whose worker was SIGKILLed.

Runs a plain RQ SimpleWorker (the class the service's worker extends, without the
supervisor's recovery), kills it mid-job, then calls StartedJobRegistry.cleanup() every
second (RQ calls it every `maintenance_interval`, 600 s by default, so this is RQ's best
case) and reports when the job left `started`. Compare: the supervisor's recovery
(tests/faults) takes ~0.1 s for a child it saw die and ABANDON_AFTER for a lost machine.

    .venv/bin/python bench/rq_default_recovery.py [job timeout, default 5]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from rq import Queue
from rq.registry import StartedJobRegistry

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.servers import RedisServer  # noqa: E402

WORKER = """
import sys
from redis import Redis
from rq import Queue, SimpleWorker
connection = Redis.from_url(sys.argv[1])
SimpleWorker([Queue("default", connection=connection)], connection=connection).work()
"""


def main() -> None:
    timeout = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    server = RedisServer().start()
    try:
        connection = server.client()
        queue = Queue("default", connection=connection)
        job = queue.enqueue("time.sleep", 3600, job_timeout=timeout)
        worker = subprocess.Popen([sys.executable, "-c", WORKER, server.url], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        while job.get_status() != "started":
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        killed = time.monotonic()
        registry = StartedJobRegistry("default", connection=connection)
        while job.get_status() == "started":
            registry.cleanup()
            time.sleep(1)
        took = time.monotonic() - killed
        print(f"job timeout {timeout} s: RQ noticed the dead worker's job after {took:.1f} s "
              f"(status now {job.get_status().value}), calling cleanup every second; "
              f"its default maintenance interval is 600 s")  # fmt: skip
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
