"""`FastWorker`, the service's default worker: RQ-compatible, one Redis round trip per plain job.

One STEP script per job (webapp/store/step.py, lua/step.lua) records the outcome of the job
just run (result, registries, worker counters, `finished` event) and claims the next (dequeue,
started bookkeeping, `started` event) atomically. Anything beyond a plain success (failures,
`Retry` return values, callbacks, repeats, rate limits, jobs that gained dependents) goes
through RQ's own code with the execution STEP created, so its behaviour stays RQ's.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from uuid import uuid4

import redis
from rq import Retry
from rq.defaults import DEFAULT_WORKER_TTL
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.suspension import WORKERS_SUSPENDED
from rq.timeouts import JobTimeoutException, TimerDeathPenalty
from rq.utils import now, str_to_date, utcformat
from rq.worker import WorkerStatus

from webapp.infra import tracing
from webapp.infra.clock import now_iso
from webapp.infra.redis import REDIS_UNAVAILABLE, RedisFactory, unavailable_reason
from webapp.store import keys, limits, step, webhooks
from webapp.store.jobreads import job_name
from webapp.worker.recovery import Recovery
from webapp.worker.resilience import REDIS_RETRY_MAX, OutageLog
from webapp.worker.rqworker import ServiceWorker
from webapp.worker.traced import perform_traced

# Seconds a reply of the idle wait may take beyond the wait itself before the connection is
# taken for lost (a claim or a CLIENT ID takes milliseconds)
REPLY_DEADLINE = 5.0
# The reason a job this worker's index lists, but that it does not hold, is recovered with
LOST_BY_REDIS = "its claim or its end was lost by Redis (a failover or a restart): the worker does not hold it"


class ClaimGate:
    """The threaded mode's STEP calls in flight (any number at once) against the recovery of
    jobs lost by Redis (alone): a claim sent but not yet answered is in the worker's execution
    index and not yet in its hands, so the recovery must not look meanwhile, nor a new claim go
    out while it looks."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._in_flight = 0
        self._recovering = False

    @contextmanager
    def stepping(self) -> Iterator[None]:
        with self._condition:
            while self._recovering:
                self._condition.wait()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._condition:
                self._in_flight -= 1
                self._condition.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._condition:
            while self._recovering:
                self._condition.wait()
            self._recovering = True
            while self._in_flight:
                self._condition.wait()
        try:
            yield
        finally:
            with self._condition:
                self._recovering = False
                self._condition.notify_all()


class FastWorker(ServiceWorker):
    """The service's worker: STEP per job, RQ's own code for anything but a plain success.

    Heartbeats, the suspension check and registry maintenance run every `periodic_interval`
    seconds instead of around every job. Jobs from `isolated_queues` run in a forked child;
    `threads` > 1 runs that many claim/run loops in one process, for jobs that mostly wait on
    I/O. Only the catalog's functions run (ServiceWorker.refusal).
    """

    periodic_interval = 5.0
    # Dates RQ's Job.restore parses with strptime (slow); the fast path does not need them.
    lazy_date_fields = (b"created_at", b"enqueued_at", b"ended_at")
    # Set from the claim's own clock instead of being parsed back.
    skipped_fields = (b"started_at", b"last_heartbeat")

    def __init__(
        self,
        *args,
        app,
        threads: int = 1,
        isolated_queues: list[str] | tuple[str, ...] = (),
        wake_timeout: float = 1.0,
        **kwargs,
    ):
        super().__init__(*args, app=app, **kwargs)
        self.threads = max(1, threads)
        self.isolated_queues = frozenset(isolated_queues)
        self.wake_timeout = wake_timeout
        self._step_script = step.step_script(self.names_by_path)
        self._step_connections = threading.local()  # one connection per job-running thread
        self._opened_step_connections: list = []  # all of them, closed when the worker stops
        self._queue_names = [queue.name for queue in self.queues]
        self._wake_keys = [keys.wake(name) for name in self._queue_names]
        self._queues_by_name = {queue.name: queue for queue in self.queues}
        self._next_periodic = 0.0
        self._waiting = False
        self._waiting_client: int | None = None  # CLIENT ID of the connection in `_wait_then_claim`'s wait
        self._limit_due: float | None = None  # limits: when a rate-parked job's key admits again
        self._tracing = tracing.enabled()  # OpenTelemetry installed (webapp/infra/tracing.py)
        self._replies_lost = False  # Redis failed mid-call: a claim or an end may be lost (`_recover_lost`)
        # The executions this worker's threads hold (claimed, outcome not yet recorded), as
        # `<job id>:<execution id>`: what `_recover_lost` leaves alone. Added and removed by the
        # thread that holds it; a copy is one C call under the GIL, so never half-changed.
        self._held: set[str] = set()
        self._gate = ClaimGate()
        self._idle_unrecorded = False  # the worker's hash may say `busy` while it is idle

    @classmethod
    def from_app(cls, app, connection, queues, name: str | None = None) -> FastWorker:
        """A worker configured from the app's settings (webapp/infra/config.py)."""
        return cls(
            queues,
            name=name,
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
            self.close_step_connections()
        return bool(completed)

    def teardown(self) -> None:
        """RQ's teardown, except that a Redis that cannot take the worker's death record (away,
        full, unable to save) is a warning, not a traceback at every stop: the registration then
        expires by itself, or the supervisor removes it once Redis takes writes again."""
        if self.is_horse:
            return
        if self.scheduler:
            self.stop_scheduler()
        for what, record in (("its stop", self.register_death), ("its unsubscription", self.unsubscribe)):
            try:
                record()
            except REDIS_UNAVAILABLE as exc:
                self.log.warning("Worker %s: could not record %s: %s", self.name, what, unavailable_reason(exc))

    def close_step_connections(self) -> None:
        """Close the connections STEP opened (one per job-running thread)."""
        for connection in self._opened_step_connections:
            connection.disconnect()
        self._opened_step_connections = []
        self._step_connections = threading.local()

    def _work_loop(self, burst: bool, max_jobs: int | None = None, periodic: bool = True) -> int:
        completed = 0
        backoff = 1.0
        pending = None  # a plain success whose outcome the next STEP records
        woken = False
        idle = False  # the last claim found nothing: wait for work (one thread: the claim rides behind the wait)
        while True:
            try:
                if periodic and not woken:  # after a wake-up the job comes first
                    self._run_periodic(burst)
                woken = False
                want_more = not self._stop_requested and (max_jobs is None or completed < max_jobs)
                if idle:
                    idle = False
                    if not want_more:
                        break
                    claimed = self._wait_then_claim()
                    handed_to_rq = False
                else:
                    self._state = WorkerStatus.BUSY  # before the claim: a signal then waits for the job
                    status, claimed = self._step(pending, claim=want_more)
                    if pending is not None:
                        self._held.discard(pending[2].composite_key)
                    handed_to_rq = pending is not None and self._hand_over(pending, status)
                    self._idle_unrecorded |= handed_to_rq
                    pending = None
                backoff = 1.0
                if self._replies_lost:
                    self._recover_lost()
                if claimed is None:
                    self._state = WorkerStatus.IDLE
                    if self._idle_unrecorded and not self._held:
                        # RQ's own path ended the last job, so no STEP finish said `idle`: without
                        # this, RQ, rq-dashboard and /api/workers showed the worker busy until its
                        # next job (with threads, once no thread holds a job)
                        self.set_state(WorkerStatus.IDLE)
                        self._idle_unrecorded = False  # once written (Redis may refuse it: again next time)
                    if (handed_to_rq or self._limit_due == 0) and want_more:
                        continue  # RQ's path may have enqueued dependents (without a wake token); jobs were parked
                    if not want_more or burst:
                        break
                    if periodic:
                        self._run_periodic(burst)  # due duties run while idle, not after a wake-up
                    if self.threads == 1:
                        idle = woken = True  # the periodic duties just ran
                    else:
                        woken = self._wait_for_work()
                    continue
                self._state = WorkerStatus.BUSY
                pending = self._run_claimed(*claimed)
                if pending is None:  # RQ's own code recorded the outcome
                    self._held.discard(claimed[2].composite_key)
                    self._idle_unrecorded = True
                completed += 1
            except REDIS_UNAVAILABLE as exc:
                # A pending outcome is kept and sent again: STEP's finish is idempotent. A full
                # Redis (maxmemory) refused the call before it wrote anything: it is retried too.
                self._state = WorkerStatus.IDLE
                self._replies_lost = True
                if self._stop_requested and pending is None:
                    break  # stopping, nothing in hand: no need to wait for Redis
                self.log.error("Worker %s: %s; retrying in %.0f s", self.name, unavailable_reason(exc), backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, REDIS_RETRY_MAX)
        return completed

    def _recover_lost(self) -> None:
        """After Redis failed mid-call, once it answers again: a job this worker's index lists
        but the worker does not hold was claimed for it with the reply lost, or its end was lost
        by Redis (a failover, a restart); it is recovered now as a dead worker's job would be
        (retried if it has retries left), not a job timeout later. With threads, no STEP is in
        flight while it looks (`ClaimGate`), so every claim made is in `_held`."""
        with self._gate.alone() if self.threads > 1 else nullcontext():
            if not self._replies_lost:
                return  # another thread looked meanwhile
            recovery = Recovery(self.connection, dict(self.app.config), self.names_by_path)
            try:
                recovery.recover_lost_executions(self.name, self._held.copy(), LOST_BY_REDIS)
            except REDIS_UNAVAILABLE:
                raise  # Redis failed again: the loop waits for it, and looks again after
            except Exception:  # a job that cannot be read must not stop the worker
                self.log.exception("Worker %s: could not recover the jobs lost by Redis", self.name)
            self._replies_lost = False

    def _work_threaded(self, burst: bool) -> int:
        """`threads` claim/run loops; the main thread keeps the periodic duties and signals."""
        counts: list[int] = []

        def loop() -> None:
            counts.append(self._work_loop(burst, periodic=False))

        runners = [threading.Thread(target=loop, name=f"jobsvc-worker-{i}", daemon=True) for i in range(self.threads)]
        for runner in runners:
            runner.start()
        outage = OutageLog(self.log, f"Worker {self.name}: heartbeat and maintenance")
        while any(runner.is_alive() for runner in runners):
            try:
                if self._run_periodic(burst):
                    outage.succeeded()
            except REDIS_UNAVAILABLE as exc:  # the job threads wait for Redis on their own
                outage.failed(exc)
            for runner in runners:
                runner.join(timeout=0.2)
        return sum(counts)

    def _shutdown(self) -> None:
        """Warm shutdown: an idle wait ends at once; a claim or a job in hand is finished first."""
        self._stop_requested = True
        if self._waiting:  # the wait with a claim behind it: end the wait, then the claim's reply is read
            self._end_wait()

    def _run_periodic(self, burst: bool) -> bool:
        """Heartbeat + suspension check in one round trip, and RQ's registry maintenance, when
        due (True: they ran)."""
        moment = time.monotonic()
        if moment < self._next_periodic:
            return False
        self._next_periodic = moment + self.periodic_interval
        registration_lost, suspended = self._heartbeat()
        if registration_lost:
            self._register_again()
        if suspended:
            self.check_for_suspension(burst)
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()
        limits.tick(self.connection)  # parked jobs whose key admits again while all workers were busy
        return True

    def _heartbeat(self) -> tuple[bool, bool]:
        """RQ's heartbeat (`last_heartbeat`, the worker's expiries) and its suspension check, in
        one round trip. Returns (registration lost, suspended): the registration is lost when
        the heartbeat had to make the worker's hash anew, after a Redis restart without its data
        (no persistence, or an older snapshot) or a flush."""
        self.last_heartbeat = now()
        timeout = self.worker_ttl + 60
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, "last_heartbeat", utcformat(self.last_heartbeat))
            pipe.expire(self.key, timeout)
            pipe.expire(self.executions_key, timeout)
            pipe.exists(WORKERS_SUSPENDED)
            added, _, _, suspended = pipe.execute()
        return added == 1, bool(suspended)

    def _register_again(self) -> None:
        """Register this worker again, as at its start, so that RQ (`rq info`, `Worker.all`),
        rq-dashboard, `/api/workers` and `/metrics` see it: otherwise it would work on unseen,
        and operators would count one worker less for the rest of its life."""
        self.log.warning("Worker %s: Redis lost this worker's registration (restarted without its data?); "
                         "registering it again", self.name)  # fmt: skip
        self.connection.delete(self.key)
        self.register_birth()
        self.set_state(self._state)

    def _wait_for_work(self) -> bool:
        """Block until an enqueuer's wake token arrives (True), `wake_timeout` passes, or a
        rate-parked job's key admits again (then the next claim promotes it). The threaded mode's
        wait: each thread's, on its STEP connection, which redis-py does not silently reconnect,
        so a dropped connection is seen (`_recover_lost`) and the reply has a deadline. One
        thread waits with its claim behind (`_wait_then_claim`)."""
        connection = self._step_connection()
        wait = self._wait_timeout()
        try:
            connection.send_command("BLPOP", *self._wake_keys, wait)
            return connection.read_response(timeout=wait + REPLY_DEADLINE) is not None
        except BaseException:
            self._drop_step_connection(connection)
            raise

    def _wait_timeout(self) -> float:
        """`wake_timeout`, or less when a rate-parked job's key admits again sooner."""
        if self._limit_due:
            return min(self.wake_timeout, max(0.01, self._limit_due - time.time()))
        return self.wake_timeout

    # ----- STEP ---------------------------------------------------------------------------

    def _step(self, pending: tuple | None, claim: bool) -> tuple[int | None, tuple | None]:
        """Record `pending` (if any) and claim the next job (if `claim`): one round trip."""
        if self.threads > 1:
            with self._gate.stepping():
                return self._step_now(pending, claim)
        return self._step_now(pending, claim)

    def _step_now(self, pending: tuple | None, claim: bool) -> tuple[int | None, tuple | None]:
        moment = now()
        claim_args = self._claim_args(moment, claim)
        began = time.time_ns() if self._tracing else 0
        reply = self._call_step(step.argv(claim_args, pending[4] if pending is not None else None))
        return reply[0], self._claimed(reply, claim_args.execution_id, moment, began)

    def _claim_args(self, moment: datetime | None, claim: bool = True) -> step.Claim:
        """STEP's claim fields; `moment` None: the claim takes Redis's clock when it runs."""
        return step.Claim(
            queue_count=len(self._queue_names),
            worker_name=self.name,
            now_text=utcformat(moment) if moment else "",
            now=repr(moment.timestamp()) if moment else "",
            execution_id=uuid4().hex,
            heartbeat_ttl=DEFAULT_WORKER_TTL,
            channel=self.events.channel,
            events_maxlen=self.events.maxlen,
            events_ttl=self.events.default_ttl,
            job_events_maxlen=self.events.job_maxlen,
            event_at=now_iso() if moment else "",
            claim="1" if claim else "0",
        )

    def _claimed(self, reply: list, execution_id: str, moment: datetime | None, began: int) -> tuple | None:
        """The job a claiming STEP's reply holds, ready to run (None when it claimed none)."""
        if len(reply) < 3:
            # limits: {status, 0} jobs were parked, claim again; {status, t} a parked key admits at t
            self._limit_due = float(reply[1]) if len(reply) == 2 else None
            return None
        self._limit_due = None
        index, job_id, flat, clock = reply[1:]
        job_id = job_id.decode()
        if moment is None:  # the claim's own clock, read from Redis: '<seconds>.<microseconds>'
            seconds, micros = clock.split(b".")
            moment = datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))
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
        if self._tracing:
            job._claim_ns = (began, time.time_ns())  # the claim's span, if the job carries a trace
        queue = self._queues_by_name.get(job.origin) or self.queues[index - 1]
        execution = Execution(execution_id, job_id, connection=self.connection, worker_name=self.name)
        execution.created_at = execution.last_heartbeat = moment
        execution._job = job
        # per-job lines are DEBUG: the events stream (`flask listen`) is the job-by-job record
        self.log.debug("Worker %s: %s: %s", self.name, job.origin, job_id)
        self._held.add(execution.composite_key)
        return queue, job, execution

    def _call_step(self, args: list) -> list:
        """EVALSHA straight on this thread's own connection: redis-py's generic command path
        (pool checkout and release with their fork checks, retry wrappers, option parsing)
        cost about a quarter of a trivial job's CPU. The connection is made by the factory
        (same settings, Sentinel-aware); Redis errors and a flushed script cache (NOSCRIPT,
        after a Redis restart) go through redis-py itself."""
        keys = step.step_keys(self.key, self.executions_key, self._queue_names)
        connection = self._step_connection()
        try:
            connection.send_command("EVALSHA", self._step_script.sha, len(keys), *keys, *args)
            return connection.read_response()
        except redis.exceptions.NoScriptError:
            pass
        except BaseException:
            self._drop_step_connection(connection)
            raise
        return self._step_script(keys=keys, args=args, client=self.connection)

    def _step_connection(self):
        """This thread's own connection for STEP (and the idle wait in front of a claim), connected
        here: redis-py sends on an unconnected connection by connecting it to its own host and
        port, which under Sentinel skips the master lookup (it would reach localhost:6379)."""
        connection = getattr(self._step_connections, "connection", None)
        if connection is None:
            connection = RedisFactory.dedicated_connection(self.connection)
            connection.connect()
            self._step_connections.connection = connection
            self._opened_step_connections.append(connection)
        return connection

    def _drop_step_connection(self, connection) -> None:
        """After an error: replies may be in flight, so the connection is never reused; the
        next call makes (and connects, through Sentinel if configured) a new one."""
        connection.disconnect()
        if getattr(self._step_connections, "connection", None) is connection:
            self._step_connections.connection = None
        if connection in self._opened_step_connections:
            self._opened_step_connections.remove(connection)

    def _wait_then_claim(self) -> tuple | None:
        """Wait for a wake token with the claiming STEP queued right behind the wait, on the same
        connection: Redis runs the claim the moment the wait ends (a token, or the timeout, after
        which jobs pushed without a token are found), and both replies come back together, so a
        woken worker starts its job without a round trip of its own. The claim takes Redis's
        clock (lib/clock.lua): it runs up to a wake timeout after it was sent. `CLIENT ID` goes
        first so that a warm shutdown can end the wait (`_shutdown`); the claim then still runs,
        and a job it took is run before the worker stops, as any job in hand."""
        claim_args = self._claim_args(None)
        keys = step.step_keys(self.key, self.executions_key, self._queue_names)
        args = step.argv(claim_args, None)
        connection = self._step_connection()
        wait = self._wait_timeout()
        commands = (
            ("CLIENT", "ID"),
            ("BLPOP", *self._wake_keys, wait),
            ("EVALSHA", self._step_script.sha, len(keys), *keys, *args),
        )
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            # Each reply has a deadline: the worker's connections otherwise block without one, and
            # a wait whose server stops answering (a frozen host, a half-open connection) would
            # hold the worker forever. Past it, the connection is dropped and the loop reconnects.
            try:
                self._waiting_client = connection.read_response(timeout=REPLY_DEADLINE)
            except redis.exceptions.ResponseError:  # an ACL refuses CLIENT: see `_end_wait`
                self._waiting_client = None
            self._waiting = True
            if self._stop_requested:  # asked to stop before the wait could be ended from outside
                self._end_wait()
            connection.read_response(timeout=wait + REPLY_DEADLINE)
            self._waiting = False
            began = time.time_ns() if self._tracing else 0
            try:
                reply = connection.read_response(timeout=REPLY_DEADLINE)
            except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
                reply = self._step_script(keys=keys, args=args, client=self.connection)
        except BaseException:
            self._drop_step_connection(connection)
            raise
        finally:
            self._waiting = False
        return self._claimed(reply, claim_args.execution_id, None, began)

    def _end_wait(self) -> None:
        """End the idle wait of `_wait_then_claim` now (from a signal handler). Where an ACL
        refuses `CLIENT ID` or `CLIENT UNBLOCK` (the latter is in `@dangerous`), the wait is
        abandoned instead: its connection is dropped, which drops the queued claim with it (a
        claim that a wake token ran in that very instant leaves its job to the recovery of a dead
        worker's jobs, webapp/worker/recovery.py, as a worker killed there would)."""
        if self._waiting_client is not None:
            try:
                self.connection.execute_command("CLIENT", "UNBLOCK", self._waiting_client)
                return
            except redis.exceptions.ResponseError:
                pass
        raise StopRequested()

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
        except REDIS_UNAVAILABLE:
            self.log.exception("Worker %s: could not record the outcome of job %s", self.name, pending[1].id)
            return False

    def _after_finish(self, pending: tuple, status: int | None) -> bool:
        """Hand a job STEP did not finish to RQ's own success path; True if it did so."""
        queue, job, execution, return_value, _ = pending
        if status == 0:  # it has dependents: RQ's own path enqueues them
            job._status = JobStatus.STARTED
            self._finalize_success(self._restore_dates(job), queue, execution, return_value)
            self._release_limit(job)
            return True
        if status == -1:
            self.log.warning("Worker %s: job %s was deleted while it ran; its result is dropped", self.name, job.id)
        return False

    # ----- one job ----------------------------------------------------------------------

    def _run_claimed(self, queue: Queue, job: Job, execution: Execution) -> tuple | None:
        if job.origin in self.isolated_queues:
            self._run_isolated(queue, job, execution)
            self._release_limit(job)
            return None
        pending = self._perform(queue, job, execution)
        if pending is None:  # RQ's own code recorded the outcome: STEP's finish will not release
            self._release_limit(job)
        return pending

    def _release_limit(self, job: Job) -> None:
        """Give back a limited job's slot (lua/lib/limits.lua); nothing for a job without a limit."""
        key = limits.limit_key(job.meta)
        if key:
            limits.release(self.connection, key, job.id)

    def _perform(self, queue: Queue, job: Job, execution: Execution) -> tuple | None:
        """Run the job in this process. Returns the STEP arguments of a plain success, or
        None once RQ's own code has recorded any other outcome (a refusal included)."""
        reason = self.refusal(job)
        if reason is not None:
            self.refuse(self._restore_dates(job), queue, execution, reason)
            return None
        job.progress_hook = self._record_progress
        if self._tracing and "traceparent" in job.meta:
            perform_traced(self, queue, job, execution)  # in spans; records the outcome itself
            return None
        return self._perform_plain(queue, job, execution)

    def _perform_plain(self, queue: Queue, job: Job, execution: Execution) -> tuple | None:
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

    def _finish_args(self, job: Job, execution: Execution, return_value) -> step.Finish | None:
        """STEP's finish arguments, or None when the outcome needs RQ's own success path."""
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        if (
            ("webhook" in job.meta and webhooks.target_for(job.meta["webhook"], "finished"))  # a delivery too
            or isinstance(return_value, Retry)
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
        event = self.events.payload(
            "finished", job_id=job.id, name=job_name(job, self.names_by_path), queue=job.origin, status="finished",
            owner=job.meta.get("owner"), schedule=job.meta.get("schedule"),
        )  # fmt: skip
        return step.Finish(
            done_job_id=job.id,
            done_queue=job.origin,
            done_execution_id=execution.id,
            done_ended_text=utcformat(ended),
            done_result_ttl=result_ttl,
            done_ended=repr(ended.timestamp()),
            done_return_value=value,
            done_started=repr(execution.created_at.timestamp()),
            done_working_time=repr((ended - job.started_at).total_seconds()),
            done_event_ttl=result_ttl if result_ttl > 0 else self.events.default_ttl,
            done_event=event,
            done_limit_key=limits.limit_key(job.meta),
        )

    def _run_isolated(self, queue: Queue, job: Job, execution: Execution) -> None:
        """Run the job in a forked child (RQ's work-horse isolation); fail it if the child dies."""
        pid = os.fork()
        if pid == 0:  # the child: run, record, leave without the parent's cleanup
            code = 0
            try:
                self._is_horse = True
                self.connection.connection_pool.reset()
                self._step_connections = threading.local()  # never the parent's socket
                self._opened_step_connections = []
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
