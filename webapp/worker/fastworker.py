"""The service's RQ worker.

`ServiceWorker` is RQ's in-process `SimpleWorker` plus the service's duties: it runs each
job inside the Flask app context, records lifecycle events (started, progress, finished,
failed, retrying) and keeps a failure's type and message in the job's meta.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from base64 import b64encode
from uuid import uuid4

import redis
from flask import Flask
from rq import Retry, SimpleWorker
from rq.defaults import DEFAULT_WORKER_TTL
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.suspension import is_suspended
from rq.timeouts import JobTimeoutException, TimerDeathPenalty, UnixSignalDeathPenalty
from rq.utils import now, str_to_date, utcformat
from rq.worker import WorkerStatus

from webapp import fastpath
from webapp.events import GLOBAL_STREAM, EventLog, abandoned_handler, utcnow_iso

log = logging.getLogger("webapp.workers")


# --- Stopping a running job on request (`DELETE /api/jobs/<id>`) ------------------------------
# RQ's stop-job command (rq.command) marks the job as stopped on purpose and calls kill_horse(),
# which is a no-op for SimpleWorker: the job runs in this very process, there is no horse.
# Here kill_horse() sends STOP_SIGNAL to this process; its handler acts only while a job's
# body runs (inside the death penalty, like RQ's timeout alarm) and raises JobStopped in the
# main thread. RQ then records the job as `stopped` (not failed, never retried).
STOP_SIGNAL = signal.SIGUSR1


class JobStopped(Exception):
    """The job was stopped on request (DELETE /api/jobs/<id> or RQ's send_stop_job_command)."""


class StoppableDeathPenalty(UnixSignalDeathPenalty):
    """RQ's timeout alarm, plus stop-on-request for the duration of a job's body only.

    RQ installs its SIGALRM handler around every job and removes it after; with the stop
    handler that was four sigaction calls per job, a tenth of a trivial job's CPU
    (bench/profile.py). Here both handlers are installed once per process and act only
    while a penalty is armed; between jobs an alarm or a stop request does nothing.
    """

    armed: StoppableDeathPenalty | None = None  # main thread only, like SIGALRM itself
    _installed_in: int | None = None  # the process the handlers were installed in

    def __init__(self, timeout, exception=JobTimeoutException, **kwargs):
        super().__init__(timeout, exception, **kwargs)
        self._job_body = kwargs.get("job_id") is not None  # callbacks get no job_id

    @staticmethod
    def on_alarm(signum, frame):
        penalty = StoppableDeathPenalty.armed
        if penalty is not None:
            penalty.handle_death_penalty(signum, frame)

    @staticmethod
    def on_stop(signum, frame):
        penalty = StoppableDeathPenalty.armed
        if penalty is not None and penalty._job_body:
            raise JobStopped("stopped on request")

    @classmethod
    def install(cls) -> None:
        """Install both handlers, once per process (signal.getsignal alone costs microseconds)."""
        if cls._installed_in != os.getpid():
            signal.signal(signal.SIGALRM, cls.on_alarm)
            signal.signal(STOP_SIGNAL, cls.on_stop)
            cls._installed_in = os.getpid()

    def setup_death_penalty(self):
        self.install()
        StoppableDeathPenalty.armed = self
        signal.alarm(self._timeout)

    def cancel_death_penalty(self):
        signal.alarm(0)
        StoppableDeathPenalty.armed = None


# ------------------------------------------------------------------------------------------------


class ServiceWorker(SimpleWorker):
    """SimpleWorker that runs jobs in the app context and records their lifecycle events."""

    death_penalty_class = StoppableDeathPenalty  # stop-on-request support, see above

    def _install_signal_handlers(self):
        super()._install_signal_handlers()
        StoppableDeathPenalty.install()  # a late stop request must not kill the worker

    def kill_horse(self, sig=None):
        """Called by RQ's stop-job command handler (pub/sub thread) for the job running here."""
        if self._stopped_job_id:
            os.kill(os.getpid(), STOP_SIGNAL)

    def __init__(self, *args, app: Flask, **kwargs):
        kwargs.setdefault("serializer", JSONSerializer)
        super().__init__(*args, **kwargs)
        self.app = app
        self.events = EventLog.from_config(self.connection, app.config)
        self.names_by_path = app.extensions["jobsvc"].names_by_path
        # Live events: RQ's registry maintenance reports jobs of dead workers to the exception
        # handlers; this one records them as `abandoned` (other exceptions pass through).
        self.push_exc_handler(abandoned_handler(self.events, self.names_by_path))

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
            self._record_retried_try(job, exc_string, execution)
            self._event("retrying", job, status, error=job.meta.get("error"))

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


class FastWorker(ServiceWorker):
    """The service's default worker: RQ-compatible, one Redis round trip per plain job.

    One STEP script per job records the outcome of the job just run (result, registries,
    worker counters, `finished` event) and claims the next (dequeue, started bookkeeping,
    `started` event) atomically. Anything beyond a plain success (failures, `Retry` return
    values, callbacks, repeats, rate limits, jobs that gained dependents) goes through RQ's
    own code with the execution STEP created, so its behaviour stays RQ's. Heartbeats, the
    suspension check and registry maintenance run every `periodic_interval` seconds instead
    of around every job. Jobs from `isolated_queues` run in a forked child; `threads` > 1
    runs that many claim/run loops in one process, for jobs that mostly wait on I/O.
    """

    periodic_interval = 5.0
    # Dates RQ's Job.restore parses with strptime (slow); the fast path does not need them.
    lazy_date_fields = (b"created_at", b"enqueued_at", b"ended_at")
    # Set from the claim's own clock instead of being parsed back.
    skipped_fields = (b"started_at", b"last_heartbeat")

    def __init__(
        self,
        *args,
        app: Flask,
        threads: int = 1,
        isolated_queues: list[str] | tuple[str, ...] = (),
        wake_timeout: float = 1.0,
        **kwargs,
    ):
        super().__init__(*args, app=app, **kwargs)
        self.threads = max(1, threads)
        self.isolated_queues = frozenset(isolated_queues)
        self.wake_timeout = wake_timeout
        self._step_script = self.connection.register_script(fastpath.step_lua(self.names_by_path))
        self._step_connections = threading.local()  # one connection per job-running thread
        self._queue_keys = [queue.key for queue in self.queues]
        self._wake_keys = [fastpath.wake_key(queue.name) for queue in self.queues]
        self._queues_by_name = {queue.name: queue for queue in self.queues}
        self._next_periodic = 0.0
        self._waiting = False

    @classmethod
    def from_app(cls, app: Flask, connection, queues) -> FastWorker:
        """A worker configured from the app's settings (see webapp/config.py)."""
        return cls(
            queues,
            connection=connection,
            app=app,
            default_result_ttl=app.config["RESULT_TTL"],
            threads=app.config["WORKER_THREADS"],
            isolated_queues=app.config["WORKER_ISOLATED_QUEUES"],
            wake_timeout=app.config["WORKER_WAKE_TIMEOUT"],
        )

    # ----- the loop -------------------------------------------------------------------

    def work(self, burst: bool = False, logging_level: str | None = "INFO", max_jobs: int | None = None, **_) -> bool:
        """Register, then claim and run jobs until stopped (or, in burst mode, until idle)."""
        self.bootstrap(logging_level or "INFO")
        self._install_signal_handlers()
        self._state = WorkerStatus.IDLE
        completed = 0
        try:
            if self.threads > 1:
                completed = self._work_threaded(burst)
            else:
                completed = self._work_loop(burst, max_jobs)
        except StopRequested:
            pass
        finally:
            self.teardown()
        return bool(completed)

    def _work_loop(self, burst: bool, max_jobs: int | None = None, periodic: bool = True) -> int:
        completed = 0
        backoff = 1.0
        pending = None  # a plain success whose outcome the next STEP records
        woken = False
        while True:
            try:
                if periodic and not woken:  # after a wake-up the job comes first
                    self._run_periodic(burst)
                woken = False
                want_more = not self._stop_requested and (max_jobs is None or completed < max_jobs)
                self._state = WorkerStatus.BUSY  # before the claim: a signal then waits for the job
                status, claimed = self._step(pending, claim=want_more)
                handed_to_rq = pending is not None and self._hand_over(pending, status)
                pending = None
                backoff = 1.0
                if claimed is None:
                    self._state = WorkerStatus.IDLE
                    if handed_to_rq and want_more:
                        continue  # RQ's path may have enqueued dependents (without a wake token)
                    if not want_more or burst:
                        break
                    if periodic:
                        self._run_periodic(burst)  # due duties run while idle, not after a wake-up
                    woken = self._wait_for_work()
                    continue
                pending = self._run_claimed(*claimed)
                completed += 1
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                # A pending outcome is kept and sent again: STEP's finish is idempotent.
                self._state = WorkerStatus.IDLE
                if self._stop_requested and pending is None:
                    break  # stopping, nothing in hand: no need to wait for Redis
                self.log.error("Worker %s: Redis unreachable (%s); retrying in %.0f s", self.name, exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        return completed

    def _work_threaded(self, burst: bool) -> int:
        """`threads` claim/run loops; the main thread keeps the periodic duties and signals."""
        counts: list[int] = []

        def loop() -> None:
            counts.append(self._work_loop(burst, periodic=False))

        runners = [threading.Thread(target=loop, name=f"jobsvc-worker-{i}", daemon=True) for i in range(self.threads)]
        for runner in runners:
            runner.start()
        while any(runner.is_alive() for runner in runners):
            self._run_periodic(burst)
            for runner in runners:
                runner.join(timeout=0.2)
        return sum(counts)

    def _shutdown(self) -> None:
        """Warm shutdown: an idle wait ends at once; a claim or a job in hand is finished first."""
        if self._waiting:
            raise StopRequested()
        self._stop_requested = True

    def _run_periodic(self, burst: bool) -> None:
        """Heartbeat + suspension check in one round trip, and RQ's registry maintenance."""
        moment = time.monotonic()
        if moment < self._next_periodic:
            return
        self._next_periodic = moment + self.periodic_interval
        if is_suspended(self.connection, self):
            self.check_for_suspension(burst)
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()

    def _wait_for_work(self) -> bool:
        """Block until an enqueuer's wake token arrives (True), or `wake_timeout` passes."""
        self._waiting = self.threads == 1
        try:
            return self.connection.blpop(self._wake_keys, timeout=self.wake_timeout) is not None
        finally:
            self._waiting = False

    # ----- STEP ---------------------------------------------------------------------------

    def _step(self, pending: tuple | None, claim: bool) -> tuple[int | None, tuple | None]:
        """Record `pending` (if any) and claim the next job (if `claim`): one round trip."""
        execution_id = uuid4().hex
        moment = now()
        args = [
            len(self._queue_keys),
            self.name,
            utcformat(moment),
            repr(moment.timestamp()),
            execution_id,
            DEFAULT_WORKER_TTL,
            self.events.channel,
            self.events.maxlen,
            self.events.default_ttl,
            utcnow_iso(),
            "1" if claim else "0",
        ]
        args.extend(pending[4] if pending is not None else [""])
        args.append(self.events.job_maxlen)
        reply = self._call_step(args)
        status = reply[0]
        if len(reply) == 1:
            return status, None
        index, job_id, flat = reply[1:]
        job_id = job_id.decode()
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        lazy = {field: raw.pop(field) for field in self.lazy_date_fields if field in raw}
        for field in self.skipped_fields:
            raw.pop(field, None)
        # serializer=None skips RQ's Protocol isinstance check (~20 µs); the real one is set next
        job = self.job_class(job_id, connection=self.connection, serializer=None)
        job.serializer = self.serializer
        job.restore(raw)
        job._lazy_dates = lazy
        job.started_at = job.last_heartbeat = moment
        queue = self._queues_by_name.get(job.origin) or self.queues[index - 1]
        execution = Execution(execution_id, job_id, connection=self.connection, worker_name=self.name)
        execution.created_at = execution.last_heartbeat = moment
        execution._job = job
        # per-job lines are DEBUG: the events stream (`flask listen`) is the job-by-job record
        self.log.debug("Worker %s: %s: %s", self.name, job.origin, job_id)
        return status, (queue, job, execution)

    def _call_step(self, args: list) -> list:
        """EVALSHA straight on this thread's own connection: redis-py's generic command path
        (pool checkout and release with their fork checks, retry wrappers, option parsing)
        cost about a quarter of a trivial job's CPU. Redis errors and a flushed script cache
        (NOSCRIPT, after a Redis restart) go through redis-py itself."""
        keys = [GLOBAL_STREAM, self.key, self.executions_key, *self._queue_keys, *self._wake_keys]
        connection = getattr(self._step_connections, "connection", None)
        if connection is None:
            pool = self.connection.connection_pool
            connection = self._step_connections.connection = pool.connection_class(**pool.connection_kwargs)
        try:
            connection.send_command("EVALSHA", self._step_script.sha, len(keys), *keys, *args)
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            pass
        except BaseException:
            connection.disconnect()  # a reply may be in flight: never reuse the connection
            raise
        return self._step_script(keys=keys, args=args)

    @staticmethod
    def _restore_dates(job: Job) -> Job:
        """Give the job the dates the fast path skipped, before RQ's code saves it."""
        lazy = getattr(job, "_lazy_dates", None)
        if lazy:
            job.created_at = str_to_date(lazy[b"created_at"]) if lazy.get(b"created_at") else job.created_at
            job.enqueued_at = str_to_date(lazy[b"enqueued_at"]) if lazy.get(b"enqueued_at") else None
            job._lazy_dates = None
        return job

    def _hand_over(self, pending: tuple, status: int | None) -> bool:
        """`_after_finish`, keeping the loop (and the job STEP just claimed) alive when Redis
        fails inside RQ's path: that job then stays in the started registry, where RQ's
        registry cleanup finds it, as it would after a crash of RQ's own worker."""
        try:
            return self._after_finish(pending, status)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            self.log.exception("Worker %s: could not record the outcome of job %s", self.name, pending[1].id)
            return False

    def _after_finish(self, pending: tuple, status: int | None) -> bool:
        """Hand a job STEP did not finish to RQ's own success path; True if it did so."""
        queue, job, execution, return_value, _ = pending
        if status == 0:  # it has dependents: RQ's own path enqueues them
            job._status = JobStatus.STARTED
            self._finalize_success(self._restore_dates(job), queue, execution, return_value)
            return True
        if status == -1:
            self.log.warning("Worker %s: job %s was deleted while it ran; its result is dropped", self.name, job.id)
        return False

    # ----- one job ----------------------------------------------------------------------

    def _run_claimed(self, queue: Queue, job: Job, execution: Execution) -> tuple | None:
        if job.origin in self.isolated_queues:
            self._run_isolated(queue, job, execution)
            return None
        return self._perform(queue, job, execution)

    def _perform(self, queue: Queue, job: Job, execution: Execution) -> tuple | None:
        """Run the job in this process. Returns the STEP arguments of a plain success, or
        None once RQ's own code has recorded any other outcome."""
        job.progress_hook = self._record_progress
        in_main_thread = threading.current_thread() is threading.main_thread()
        penalty = self.death_penalty_class if in_main_thread else TimerDeathPenalty  # SIGALRM: main thread only
        with self.app.app_context():
            try:
                timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
                with penalty(timeout, JobTimeoutException, job_id=job.id):
                    return_value = job.perform()
            except Exception:
                self._finalize_failure(self._restore_dates(job), queue, execution, sys.exc_info())
                return None
            job.ended_at = now()
            finish = self._finish_args(job, execution, return_value)
            if finish is not None:
                return queue, job, execution, return_value, finish
            # RQ's own success path (Retry, callbacks, repeats, rate limits, result_ttl=0 ...)
            self._finalize_success(self._restore_dates(job), queue, execution, return_value)
            return None

    def _finish_args(self, job: Job, execution: Execution, return_value) -> list | None:
        """STEP's finish arguments, or None when the outcome needs RQ's own success path."""
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        if (
            isinstance(return_value, Retry)
            or job._success_callback_name
            or job.repeats_left
            or job.has_rate_limit
            or result_ttl == 0
        ):
            return None
        try:
            value = "" if return_value is None else b64encode(job.serializer.dumps(return_value)).decode()
        except Exception:
            return None  # RQ's path records an unserializable value its own way
        job._status = JobStatus.FINISHED
        job._result = return_value
        ended = job.ended_at
        name = job.meta.get("name") or self.names_by_path.get(job.func_name or "", job.func_name)
        payload = {
            "event": "finished",
            "job_id": job.id,
            "name": name,
            "queue": job.origin,
            "status": "finished",
            "at": utcnow_iso(),
        }
        ended_ts = repr(ended.timestamp())
        return [
            job.id,
            job.origin,
            execution.id,
            utcformat(ended),
            result_ttl,
            ended_ts,
            value,
            repr(execution.created_at.timestamp()),
            repr((ended - job.started_at).total_seconds()),
            result_ttl if result_ttl > 0 else self.events.default_ttl,
            json.dumps(payload, separators=(",", ":"), default=str),
        ]

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """A cold shutdown takes an isolated job's child down with the worker."""
        if self._horse_pid:
            try:
                os.kill(self._horse_pid, sig)
            except ProcessLookupError:
                pass
        else:
            super().kill_horse(sig)  # a stop request for the job running in this process

    def _run_isolated(self, queue: Queue, job: Job, execution: Execution) -> None:
        """Run the job in a forked child (RQ's work-horse isolation); fail it if the child dies."""
        pid = os.fork()
        if pid == 0:  # the child: run, record, leave without the parent's cleanup
            code = 0
            try:
                self._is_horse = True
                self.connection.connection_pool.reset()
                self._step_connections = threading.local()  # never the parent's socket
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                pending = self._perform(queue, job, execution)
                if pending is not None:
                    status, _ = self._step(pending, claim=False)
                    self._after_finish(pending, status)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        self._horse_pid = pid
        _, status = os.waitpid(pid, 0)
        self._horse_pid = 0
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return
        job.refresh()
        if job.get_status(refresh=False) != JobStatus.STARTED:
            return  # the child recorded the outcome before it died
        reason = (
            f"the job's process was killed by signal {os.WTERMSIG(status)}"
            if os.WIFSIGNALED(status)
            else f"the job's process exited with status {os.WEXITSTATUS(status)}"
        )
        job.meta["error"] = {"type": "WorkHorseTerminated", "message": reason}
        job.save_meta()
        job.ended_at = now()
        self.handle_job_failure(job, queue, exc_string=reason, execution=execution)
