"""The worker supervisor: keeps a pool of worker processes running (`python worker.py`).

It forks `WORKER_PROCESSES` workers from one warm parent (no interpreter start per job or
per worker), replaces any that die, and turns SIGTERM/SIGINT into one warm shutdown of
every child: the current jobs may finish within `WORKER_SHUTDOWN_GRACE`, no new job is taken.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from multiprocessing import get_context

from redis.exceptions import RedisError
from rq.queue import Queue
from rq.serializers import JSONSerializer

from webapp.redis_client import make_client
from webapp.scheduling import start_scheduler
from webapp.workers import FastWorker

log = logging.getLogger("webapp.supervisor")


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so no worker outlives it."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def run_worker(create_app, burst: bool = False) -> None:
    """Body of one worker process: build the app through the factory, then work."""
    os.setpgrp()  # the supervisor alone decides when a worker stops
    _die_with_parent()
    app = create_app()
    connection = make_client(app.config, socket_timeout=None)
    queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in app.config["QUEUES"]]
    worker = FastWorker.from_app(app, connection, queues)
    worker.work(burst=burst, logging_level=app.config["LOG_LEVEL"], with_scheduler=False)


class Supervisor:
    """Keeps `processes` worker processes alive and shuts them down warmly on a signal."""

    restart_delay = 1.0

    def __init__(self, create_app, processes: int = 1, burst: bool = False, grace: float = 25.0):
        self.create_app = create_app
        self.processes = processes
        self.burst = burst
        self.grace = grace
        self.children: dict[int, object] = {}
        self.stopping = 0
        self.cold_at: float | None = None
        self.context = get_context("fork")

    def _spawn(self) -> None:
        process = self.context.Process(target=run_worker, args=(self.create_app, self.burst), daemon=False)
        process.start()
        self.children[process.pid] = process
        log.info("worker process %d started", process.pid)

    def _signal_children(self) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _on_signal(self, signum, frame) -> None:
        self.stopping += 1
        # First signal: warm shutdown (current jobs may finish within the grace period).
        # A second signal, or the grace running out, makes it cold.
        if self.stopping == 1:
            self.cold_at = time.monotonic() + self.grace
        log.info(
            "%s: %s shutdown of %d worker(s)",
            signal.Signals(signum).name,
            "warm" if self.stopping == 1 else "cold",
            len(self.children),
        )
        if self.stopping <= 2:
            self._signal_children()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for _ in range(self.processes):
            self._spawn()
        while self.children:
            for pid, process in list(self.children.items()):
                process.join(timeout=0)
                if process.exitcode is None:
                    continue
                del self.children[pid]
                if self.stopping or self.burst:
                    continue
                log.warning("worker process %d exited with %s; starting a replacement", pid, process.exitcode)
                time.sleep(self.restart_delay)
                self._spawn()
            if self.cold_at is not None and time.monotonic() > self.cold_at and self.stopping < 2:
                log.warning("shutdown grace of %g s is over; stopping the jobs still running", self.grace)
                self.stopping = 2
                self._signal_children()
            time.sleep(0.1)
        log.info("all worker processes stopped")
        return 0


def wait_for_redis(config) -> None:
    """Block until Redis answers, saying so every few seconds: a worker started before
    Redis (or during an outage) should wait, not crash the whole Procfile."""
    client = make_client(config)
    next_note = 0.0
    while True:
        try:
            client.ping()
            return
        except RedisError as exc:
            if time.monotonic() >= next_note:
                log.warning(
                    "cannot reach Redis at %s (%s); retrying. Start Redis or fix REDIS_URL.", config["REDIS_URL"], exc
                )
                next_note = time.monotonic() + 5
            time.sleep(0.5)


def main(create_app, argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run the job service's RQ workers.")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default WORKER_PROCESSES)")
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    options = parser.parse_args(argv)
    app = create_app()
    processes = options.processes or app.config["WORKER_PROCESSES"]
    wait_for_redis(app.config)
    log.info("supervising %d worker process(es) on queues %s", processes, ", ".join(app.config["QUEUES"]))
    grace = app.config["WORKER_SHUTDOWN_GRACE"]
    # Scheduled jobs (enqueue_in/at, retry intervals) are moved by a thread of this process.
    scheduler = None if options.burst else start_scheduler(app.config)
    try:
        return Supervisor(create_app, processes, burst=options.burst, grace=grace).run()
    finally:
        if scheduler is not None:
            scheduler.stop()
