"""Stopping a running job on request (`DELETE /api/jobs/<id>`), and RQ's timeout, per process.

RQ's stop-job command (rq.command) marks the job as stopped on purpose and calls kill_horse(),
which is a no-op for an in-process worker: the job runs in this very process, there is no
horse. Here kill_horse() sends STOP_SIGNAL to this process; its handler acts only while a
job's body runs (inside the death penalty, like RQ's timeout alarm) and raises JobStopped in
the main thread. RQ then records the job as `stopped` (not failed, never retried).
"""

from __future__ import annotations

import os
import signal

from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

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
    # A stop that came for the claimed job before its body started (the worker already runs the
    # job, the penalty is not armed yet): the body is stopped as it starts, not run to its end.
    stop_pending_for: str | None = None

    def __init__(self, timeout, exception=JobTimeoutException, **kwargs):
        super().__init__(timeout, exception, **kwargs)
        self._job_id = kwargs.get("job_id")
        self._job_body = self._job_id is not None  # callbacks get no job_id

    @staticmethod
    def on_alarm(signum, frame):
        penalty = StoppableDeathPenalty.armed
        if penalty is not None:
            penalty.handle_death_penalty(signum, frame)

    @staticmethod
    def on_stop(signum, frame):
        penalty = StoppableDeathPenalty.armed
        if penalty is not None and penalty._job_body:
            StoppableDeathPenalty.stop_pending_for = None
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
        if self._job_body:
            pending, StoppableDeathPenalty.stop_pending_for = StoppableDeathPenalty.stop_pending_for, None
            if pending == self._job_id:  # (a pending stop for another job came too late for it)
                raise JobStopped("stopped on request")
        StoppableDeathPenalty.armed = self
        signal.alarm(self._timeout)

    @classmethod
    def request_stop(cls, job_id: str) -> None:
        """Stop `job_id`, the job this process runs: now if its body runs, else as it starts."""
        cls.stop_pending_for = job_id
        os.kill(os.getpid(), STOP_SIGNAL)

    def cancel_death_penalty(self):
        signal.alarm(0)
        StoppableDeathPenalty.armed = None
        if self._job_body:
            StoppableDeathPenalty.stop_pending_for = None  # a stop after the body ended stops nothing
