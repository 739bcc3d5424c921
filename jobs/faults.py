"""Test-only jobs for the fault-injection suite (tests/faults). Not in the allow-list:
the HTTP API cannot submit them; tests enqueue them with RQ directly."""

from __future__ import annotations

import ctypes
import signal
import time

from rq import get_current_job

from jobs.progress import report_progress

RUNS_PREFIX = "faults:runs:"


def record(seconds: float = 0.0) -> int:
    """Count this execution in `faults:runs:<job id>` (so duplicates show), then sleep."""
    job = get_current_job()
    runs = job.connection.incr(RUNS_PREFIX + job.id)
    if seconds:
        time.sleep(seconds)
    return runs


def quiet_sleep(seconds: float) -> float:
    """Count this run (its one Redis call, right at the start), then sleep without touching
    Redis (Redis may vanish meanwhile) and return the seconds."""
    job = get_current_job()
    job.connection.incr(RUNS_PREFIX + job.id)
    time.sleep(seconds)
    return seconds


def reporting_sleep(seconds: float) -> float:
    """Count this run, then sleep reporting progress every 0.1 s (each report writes to Redis)."""
    job = get_current_job()
    job.connection.incr(RUNS_PREFIX + job.id)
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        report_progress(elapsed / seconds, f"{elapsed:.1f} of {seconds:g} s")
        time.sleep(0.1)
    return seconds


def stuck_in_c(seconds: int = 600) -> None:
    """Block the signals RQ's timeout uses, then sleep inside libc: a job SIGALRM cannot stop."""
    job = get_current_job()
    job.connection.incr(RUNS_PREFIX + job.id)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM, signal.SIGINT})
    ctypes.CDLL(None).sleep(int(seconds))
