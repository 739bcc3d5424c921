"""The service's RQ worker and the supervisor that keeps a pool of them running.

`ServiceWorker` is RQ's in-process `SimpleWorker` plus the service's duties: it runs each
job inside the Flask app context, records lifecycle events (started, progress, finished,
failed, retrying) and keeps a failure's type and message in the job's meta.

`Supervisor` forks `WORKER_PROCESSES` workers from one warm parent (no interpreter start
per job or per worker), replaces any that die, and turns SIGTERM/SIGINT into one warm
shutdown of every child: the current jobs finish, no new job is taken.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from multiprocessing import get_context

from flask import Flask
from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer

from webapp.events import EventLog
from webapp.redis_client import make_client

log = logging.getLogger("webapp.workers")


class ServiceWorker(SimpleWorker):
    """SimpleWorker that runs jobs in the app context and records their lifecycle events."""

    def __init__(self, *args, app: Flask, **kwargs):
        kwargs.setdefault("serializer", JSONSerializer)
        super().__init__(*args, **kwargs)
        self.app = app
        self.events = EventLog.from_config(self.connection, app.config)
        self.names_by_path = app.extensions["jobsvc"].names_by_path

    def _event(self, event: str, job: Job, status: str, pipeline=None, **extra) -> None:
        name = job.meta.get("name") or self.names_by_path.get(job.func_name or "", job.func_name)
        self.events.append(event, job_id=job.id, name=name, queue=job.origin, status=status, pipeline=pipeline, **extra)

    def _record_progress(self, job: Job, progress: dict) -> None:
        with self.connection.pipeline() as pipe:
            pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
            self._event("progress", job, "started", pipeline=pipe, progress=progress)
            pipe.execute()

    def perform_job(self, job: Job, queue: Queue, execution) -> bool:
        job.progress_hook = self._record_progress
        with self.app.app_context():
            return super().perform_job(job, queue, execution)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        super().prepare_job_execution(job, remove_from_intermediate_queue)
        self._event("started", job, "started", worker=self.name)

    def handle_exception(self, job: Job, *exc_info) -> None:
        exc_type, exc_value, _ = exc_info
        if exc_type is not None:
            job.meta["error"] = {
                "type": exc_type.__name__,
                "message": str(exc_value) if exc_value is not None else "",
            }
            job.save_meta()
        super().handle_exception(job, *exc_info)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry, execution) -> None:
        super().handle_job_success(job, queue, started_job_registry, execution)
        self._event("finished", job, "finished", ttl=job.get_result_ttl(self.default_result_ttl))

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry=None, exc_string="", execution=None):
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        status = job.get_status(refresh=False)
        status = status.value if status is not None else "failed"
        if status in ("failed", "stopped"):
            self._event(status, job, status, ttl=job.failure_ttl, error=job.meta.get("error"))
        else:
            self._event("retrying", job, status, error=job.meta.get("error"))


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
    worker = ServiceWorker(
        queues,
        connection=connection,
        app=app,
        default_result_ttl=app.config["RESULT_TTL"],
    )
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
    return Supervisor(create_app, processes, burst=options.burst, grace=grace).run()
