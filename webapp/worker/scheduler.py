"""Scheduled jobs: moves due jobs (`enqueue_in`, `enqueue_at`, retry intervals) onto their queues.

RQ's own scheduler runs as a process forked by a worker, which survives a SIGKILLed worker
and then steals jobs (see the supervisor's notes). Here the same RQ machinery (`RQScheduler`:
its per-queue locks, heartbeat and `enqueue_scheduled_jobs`) runs in a thread of the
`worker.py` supervisor instead: it lives and dies with that process, and with several
supervisors the locks let exactly one of them move the jobs of each queue. Moving a job also
records its `queued` event, in the same transaction.
"""

from __future__ import annotations

import logging
import threading
import time

from redis.exceptions import RedisError
from rq.job import Job
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from webapp.infra.redis import RedisFactory
from webapp.store import keys
from webapp.store.events import EventLog
from webapp.worker.resilience import OutageLog

log = logging.getLogger("webapp.worker.scheduler")


class EventfulScheduler(RQScheduler):
    """RQScheduler whose move of due jobs also records each job's `queued` event, in the same
    transaction as the move: a worker can never start a job before its `queued` is written."""

    events: EventLog

    def enqueue_scheduled_jobs(self):
        self._status = self.Status.WORKING
        if not self._scheduled_job_registries and self._acquired_locks:
            self.prepare_registries()
        for registry in self._scheduled_job_registries:
            # The exact time, not RQ's whole second: a retry is scored at its exact due time
            # (webapp/worker/servicejob.py); whole-second scores are due as before.
            job_ids = registry.get_jobs_to_schedule(time.time())
            if not job_ids:
                continue
            queue = Queue(registry.name, connection=self.connection, serializer=self.serializer)
            jobs = Job.fetch_many(job_ids, connection=self.connection, serializer=self.serializer)
            with self.connection.pipeline() as pipe:
                for job_id, job in zip(job_ids, jobs, strict=True):
                    if job is not None and job.has_rate_limit:
                        continue  # RQ's own path below: it needs a pipeline of its own
                    registry.remove(job_id, pipeline=pipe)
                    if job is None:
                        continue  # expired meanwhile
                    queue._enqueue_job(job, pipeline=pipe, at_front=job.should_enqueue_at_front())
                    self.events.for_job("queued", job, status="queued", pipeline=pipe)
                    pipe.rpush(keys.wake(queue.name), 1)  # wakes an idle worker at once
                pipe.execute()
            for job in jobs:
                if job is not None and job.has_rate_limit:
                    with self.connection.pipeline() as pipe:
                        registry.remove(job.id, pipeline=pipe)
                        queue._enqueue_rate_limited_job(job, pipeline=pipe, at_front=job.should_enqueue_at_front())
                        pipe.execute()
        self._status = self.Status.STARTED


class SchedulerThread(threading.Thread):
    """RQScheduler's work loop without its signal handling (a thread may not install any)."""

    def __init__(self, config, factory: RedisFactory, interval: float | None = None):
        super().__init__(name="rq-scheduler", daemon=True)
        self.interval = config["SCHEDULER_INTERVAL"] if interval is None else interval
        connection = factory.client(socket_timeout=10, name="jobsvc-scheduler")
        # The lock's lifetime is RQ's (interval + 60 s); RQ wants whole seconds there.
        self.scheduler = EventfulScheduler(
            config["QUEUES"], connection=connection, interval=1, serializer=JSONSerializer, logging_level="WARNING"
        )
        self.scheduler.events = EventLog.from_config(self.scheduler.connection, config)
        self._stop_event = threading.Event()

    def run(self) -> None:
        scheduler = self.scheduler
        registered = False
        outage = OutageLog(log, "scheduler")
        while not self._stop_event.is_set():
            try:
                if not registered:
                    scheduler.register_birth()
                    registered = True
                if scheduler.should_reacquire_locks:
                    scheduler.acquire_locks()
                scheduler.heartbeat()
                scheduler.enqueue_scheduled_jobs()
                outage.succeeded()
            except RedisError as exc:
                # Redis down or restarting: keep trying; due jobs are moved once it is back.
                outage.failed(exc)
                scheduler.lock_acquisition_time = None
            except Exception:
                log.exception("scheduler: unexpected error; retrying")
            self._stop_event.wait(self.interval)
        try:
            scheduler.stop()  # releases the locks so another supervisor takes over at once
        except RedisError:
            pass
        finally:
            scheduler.connection.close()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop_event.set()
        self.join(timeout)


def start_scheduler(config, factory: RedisFactory) -> SchedulerThread:
    thread = SchedulerThread(config, factory)
    thread.start()
    log.info("scheduler thread started (every %g s)", thread.interval)
    return thread
