"""`python worker.py`: wait for Redis, check it, then supervise the worker processes.

Scheduled jobs (enqueue_in/at, retry intervals) are moved onto their queues by a thread of
this process (webapp/worker/scheduler.py), which lives and dies with it; so are the ticks of
periodic schedules (webapp/worker/ticker.py, which applies `jobs.SCHEDULES` first).
"""

from __future__ import annotations

import argparse
import logging

import jobs
from webapp.infra import checks
from webapp.infra.process import wait_for_redis
from webapp.infra.redis import RedisFactory
from webapp.worker.scheduler import start_scheduler
from webapp.worker.supervisor import Supervisor
from webapp.worker.ticker import start_ticker
from webapp.worker.webhooks import start_deliveries

log = logging.getLogger("webapp.worker")


def main(create_app, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the job service's RQ workers.")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default WORKER_PROCESSES)")
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    options = parser.parse_args(argv)
    app = create_app()
    factory: RedisFactory = app.extensions["redis_factory"]
    processes = options.processes or app.config["WORKER_PROCESSES"]
    wait_for_redis(factory)
    try:
        checks.check_once(app.extensions["redis"], app.config, "worker")
    except checks.UnsafeRedis as exc:
        log.error("%s", exc)
        return 2
    log.info("supervising %d worker process(es) on queues %s", processes, ", ".join(app.config["QUEUES"]))
    scheduler = None if options.burst else start_scheduler(app.config, factory)
    ticker = None if options.burst else start_ticker(app, factory, getattr(jobs, "SCHEDULES", {}))
    deliveries = None if options.burst else start_deliveries(app, factory)  # webhooks (README "Webhooks")
    try:
        supervisor = Supervisor(
            create_app,
            processes,
            burst=options.burst,
            grace=app.config["WORKER_SHUTDOWN_GRACE"],
            config=app.config,
            factory=factory,
        )
        return supervisor.run()
    finally:
        if scheduler is not None:
            scheduler.stop()
        if ticker is not None:
            ticker.stop()
        if deliveries is not None:
            deliveries.stop()
