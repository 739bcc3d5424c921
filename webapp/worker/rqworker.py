"""`ServiceWorker`: RQ's in-process `SimpleWorker` plus the service's duties.

It runs each job inside the Flask app context, records lifecycle events (started, progress,
finished, failed, retrying, stopped) and keeps a failure's type and message in the job's meta.
It leaves paused queues alone (webapp/store/pauses.py): their jobs stay queued.
It runs only what the catalog allows: a job whose function (or callback) is not in the
allow-list is failed at once, never imported or called, whoever enqueued it (`refuse`).
The fast worker (webapp/worker/fastworker.py) builds on it.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time

from rq import SimpleWorker
from rq.exceptions import AbandonedJobError, DeserializationError
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers
from rq.queue import Queue
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import WorkerStatus

from webapp.infra.redis import REDIS_UNAVAILABLE
from webapp.store import pauses
from webapp.store.events import EventLog
from webapp.store.jobreads import job_name
from webapp.worker.resilience import REDIS_RETRY_MAX, OutageLog
from webapp.worker.servicejob import ServiceJob
from webapp.worker.signals import JobStopped, StoppableDeathPenalty


class JobNotAllowed(Exception):
    """The job names a function (or callback) outside the catalog's allow-list."""


class ServiceWorker(SimpleWorker):
    """SimpleWorker that runs jobs in the app context and records their lifecycle events."""

    death_penalty_class = StoppableDeathPenalty  # stop-on-request support (webapp/worker/signals.py)
    pause_recheck = 1.0  # seconds between looks at the paused queues while any is paused
    job_class = ServiceJob  # retries after a delay never start early (webapp/worker/servicejob.py)

    def __init__(self, *args, app, **kwargs):
        kwargs.setdefault("serializer", JSONSerializer)
        super().__init__(*args, **kwargs)
        self.app = app
        self.events = EventLog.from_config(self.connection, app.config)
        self.catalog = app.extensions["jobsvc"].catalog
        self.names_by_path = self.catalog.names_by_path
        self.allowed_prefixes = tuple(app.config.get("WORKER_ALLOWED_PREFIXES") or ())
        # Live events: RQ's registry maintenance reports jobs of dead workers to the exception
        # handlers; this one records them as `abandoned` (other exceptions pass through).
        self.push_exc_handler(self._record_abandoned)
        self._progress_outage = OutageLog(self.log, "progress reports", "the jobs go on, their reports are skipped")

    def _install_signal_handlers(self):
        super()._install_signal_handlers()
        StoppableDeathPenalty.install()  # a late stop request must not kill the worker

    def get_current_job_id(self) -> str | None:
        """The job this worker runs now, read afresh: RQ's stop-job handler asks this, and RQ's
        own answer comes from a cache of the worker's execution index that the fast worker (which
        claims jobs in Lua, without `worker.execution`) never refreshes, so after a first stop
        every later stop request to the process named the old job and was ignored."""
        if self.executions:  # RQ's own path keeps its executions in memory
            return next(iter(self.executions.values())).job_id
        executions = self.get_current_executions(refresh=True)
        return executions[0].job_id if executions else None

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """RQ calls this for a stop request (from its pub/sub thread) and on a cold shutdown.

        A job running in a forked child (WORKER_ISOLATED_QUEUES) is killed with `sig`; a job
        running in this process gets STOP_SIGNAL, which raises JobStopped inside it.
        """
        if self._horse_pid:
            try:
                os.kill(self._horse_pid, sig)
            except ProcessLookupError:
                pass
        elif self._stopped_job_id:
            StoppableDeathPenalty.request_stop(self._stopped_job_id)

    # -- events ---------------------------------------------------------------------------

    def _event(self, event: str, job: Job, status: str, pipeline=None, ends_run: bool = False, **extra) -> None:
        """Record `event` for `job`; `ends_run`: the event ends the run this worker started,
        which is timed from the job's `started_at` (the duration histogram of /metrics)."""
        began = job.started_at.timestamp() if ends_run and job.started_at is not None else None
        self.events.append(event, job_id=job.id, name=job_name(job, self.names_by_path), queue=job.origin,
                           status=status, owner=job.meta.get("owner"), schedule=job.meta.get("schedule"),
                           webhook=job.meta.get("webhook"), began=began,
                           pipeline=pipeline, **extra)  # fmt: skip

    def _record_progress(self, job: Job, progress: dict) -> None:
        """Save the job's meta and publish a `progress` event, in one step, while the job exists
        (after Redis lost it, a report writes nothing). A report is not the job's work: when
        Redis cannot take it (unreachable, full), the job goes on and the next report, which
        carries the whole meta, catches up."""
        try:
            self.events.progress(job.key, job.serializer.dumps(job.meta), job_id=job.id,
                                 name=job_name(job, self.names_by_path), queue=job.origin, status="started",
                                 owner=job.meta.get("owner"), schedule=job.meta.get("schedule"),
                                 webhook=job.meta.get("webhook"), progress=progress)  # fmt: skip
        except REDIS_UNAVAILABLE as exc:
            self._progress_outage.failed(exc)
        else:
            self._progress_outage.succeeded()

    def _record_abandoned(self, job: Job, exc_type, exc_value, traceback) -> bool:
        """An RQ exception handler that records `abandoned` for a job whose worker died.

        RQ's registry maintenance calls a worker's exception handlers with AbandonedJobError
        for each job left in `started` by a dead worker, just before it retries or fails it;
        other exceptions pass through untouched.
        """
        if exc_type is AbandonedJobError or isinstance(exc_value, AbandonedJobError):
            if job.retries_left:
                status = "scheduled" if job.get_retry_interval() > 0 else "queued"
            else:
                status = "failed"
            error = {"type": "AbandonedJobError", "message": "the worker running this job died"}
            self.events.for_job("abandoned", job, status=status, name=job_name(job, self.names_by_path), error=error)
        return True

    # -- the allow-list --------------------------------------------------------------------

    def refusal(self, job: Job) -> str | None:
        """Why this job must not run (its function or a callback is not allowed), else None."""
        try:
            names = [job.func_name]
        except DeserializationError:
            return "its data cannot be read as JSON (RQ's JSON serializer); it was not run"
        names += [name for name in (job._success_callback_name, job._failure_callback_name,
                                    job._stopped_callback_name) if name]  # fmt: skip
        for name in names:
            reason = self.catalog.refusal(name, self.allowed_prefixes)
            if reason is not None:
                return reason
        return None

    def refuse(self, job: Job, queue: Queue, execution, reason: str) -> None:
        """Fail a job that must not run, at once and for good: no import, no call, no retry."""
        job._success_callback_name = job._failure_callback_name = job._stopped_callback_name = None
        job.retries_left = 0
        job.ended_at = now()
        self.log.error("Worker %s: job %s refused: %s", self.name, job.id, reason)
        try:
            raise JobNotAllowed(reason)
        except JobNotAllowed:
            self._finalize_failure(job, queue, execution, sys.exc_info())

    # -- RQ's own path -------------------------------------------------------------------------

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        """RQ's dequeue over the queues that are not paused. While any queue is paused, the
        paused set is read again every `pause_recheck` seconds, so a resume is seen within it.
        A pause made while this worker blocks in RQ's wait with nothing paused is seen after its
        next job (the fast worker's claim checks on every claim)."""
        idle_since = time.monotonic()
        while True:
            paused = pauses.paused_names(self.connection)
            if not paused:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            if max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                return None
            every = self._ordered_queues
            active = [queue for queue in every if queue.name not in paused]
            if timeout is None:  # burst: one non-blocking look
                if not active:
                    return None
                self._ordered_queues = active
                try:
                    return super().dequeue_job_and_maintain_ttl(None, max_idle_time)
                finally:
                    self._ordered_queues = every
            if not active:
                self.set_state(WorkerStatus.IDLE)
                self.heartbeat()
                time.sleep(self.pause_recheck)
                continue
            self._ordered_queues = active
            try:
                # max_idle_time ends RQ's blocking wait after pause_recheck, to look again
                result = super().dequeue_job_and_maintain_ttl(timeout, math.ceil(self.pause_recheck))
            finally:
                self._ordered_queues = every
            if result is not None:
                return result

    def perform_job(self, job: Job, queue: Queue, execution) -> bool:
        reason = self.refusal(job)
        if reason is not None:
            self.prepare_job_execution(job)
            self.refuse(job, queue, execution, reason)
            return False
        job.progress_hook = self._record_progress
        with self.app.app_context():
            return super().perform_job(job, queue, execution)

    def bootstrap(self, *args, **kwargs) -> None:
        """RQ's start (registration, its command channel, state `started`), patient with Redis:
        Redis going away in these few milliseconds (a restart, a failover) was an uncaught error,
        and the process died with a traceback, to be replaced under another name. Each try starts
        afresh: a registration half made is this worker's own (RQ refuses a name whose record
        lives), and a subscription made is undone."""
        outage = OutageLog(self.log, f"Worker {self.name}: registration")
        delay, tries = 0.5, 0
        while True:
            try:
                if tries:
                    self.connection.delete(self.key)
                tries += 1
                super().bootstrap(*args, **kwargs)
            except REDIS_UNAVAILABLE as exc:
                outage.failed(exc)
                self._undo_subscription()
                time.sleep(delay)
                delay = min(delay * 2, REDIS_RETRY_MAX)
            else:
                outage.succeeded()
                return

    def _undo_subscription(self) -> None:
        thread, pubsub = getattr(self, "pubsub_thread", None), getattr(self, "pubsub", None)
        if thread is not None:
            thread.stop()
            self.pubsub_thread = None
        if pubsub is not None:
            pubsub.close()
            self.pubsub = None

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
        if exc_type is not None and issubclass(exc_type, JobStopped):
            # What an operator asked for is no error: one line, not RQ's ERROR with a traceback.
            self.log.info("Worker %s: job %s stopped on request", self.name, job.id)
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry, execution) -> None:
        super().handle_job_success(job, queue, started_job_registry, execution)
        self._event("finished", job, "finished", ends_run=True, ttl=job.get_result_ttl(self.default_result_ttl))

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry=None, exc_string="", execution=None):
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
        status = job.get_status(refresh=False)
        status = status.value if status is not None else "failed"
        if status in ("failed", "stopped"):
            self._event(status, job, status, ends_run=True, ttl=job.failure_ttl, error=job.meta.get("error"))
        else:
            self._record_retried_try(job, exc_string, execution)
            self._event("retrying", job, status, ends_run=True, error=job.meta.get("error"))

    def _record_retried_try(self, job: Job, exc_string: str, execution) -> None:
        """Keep a failed try that will be retried in RQ's result history (RQ records only the last)."""
        Result.create(
            job,
            Result.Type.RETRIED,
            job.failure_ttl,
            exc_string=exc_string,
            worker_name=self.name,
            execution_id=execution.id if execution else None,
            execution_started_at=execution.created_at if execution else None,
            execution_ended_at=job.ended_at,
        )
