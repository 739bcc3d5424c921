"""A stop request that reaches the worker in the moment between the claim of a job and the start
of its body (the API already shows the job `started`) stops the job as its body starts; it is
not lost, and a stale one never stops another job. Real signals, in this process."""

from __future__ import annotations

import pytest
from rq.timeouts import JobTimeoutException

from webapp.worker.signals import JobStopped, StoppableDeathPenalty


@pytest.fixture(autouse=True)
def handlers():
    StoppableDeathPenalty.install()
    yield
    StoppableDeathPenalty.stop_pending_for = None
    StoppableDeathPenalty.armed = None


def test_a_stop_before_the_body_starts_stops_it_as_it_starts():
    StoppableDeathPenalty.request_stop("job-1")  # the signal arrives while no body runs
    ran = []
    with pytest.raises(JobStopped):
        with StoppableDeathPenalty(5, JobTimeoutException, job_id="job-1"):
            ran.append(True)
    assert ran == []
    assert StoppableDeathPenalty.stop_pending_for is None


def test_a_stop_during_the_body_stops_it_at_once():
    with pytest.raises(JobStopped):
        with StoppableDeathPenalty(5, JobTimeoutException, job_id="job-2"):
            StoppableDeathPenalty.request_stop("job-2")
            raise AssertionError("the body went on after the stop")


def test_a_stale_stop_never_stops_another_job():
    StoppableDeathPenalty.request_stop("job-3")
    with StoppableDeathPenalty(5, JobTimeoutException, job_id="job-4"):
        pass  # another job: runs
    with StoppableDeathPenalty(5, JobTimeoutException, job_id="job-3"):
        pass  # the stale request was dropped when job-4 started
