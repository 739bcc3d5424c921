"""Thousands of jobs through several worker.py processes while workers are SIGKILLed at
random moments: no job is lost, and every duplicate run is a visible retry attempt.

FAULT_JOBS (default 2000), FAULT_KILL_SECONDS (default 12) and FAULT_ROUNDS (default 1) make
it longer (`make faults`).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import pytest
from rq.results import Result

from tests.faults.faultkit import enqueue, fault_env, fetch, report, wait_until, worker_children
from tests.servers import start_worker

JOBS = int(os.environ.get("FAULT_JOBS", "2000"))
KILL_SECONDS = float(os.environ.get("FAULT_KILL_SECONDS", "12"))


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.parametrize("round_", range(int(os.environ.get("FAULT_ROUNDS", "1"))))
def test_random_sigkills_under_load_lose_nothing(redis_server, redis_conn, round_):
    rng = random.Random(int(os.environ.get("FAULT_SEED", "5")) + round_)
    supervisors = [start_worker(redis_server.url, **fault_env(WORKER_PROCESSES="2")) for _ in range(3)]
    ours = {process.pid for process in supervisors}
    try:
        queues = ("high", "default", "low")
        job_ids = [
            # about 20 ms a job on average: 2000 jobs keep 6 workers busy for several seconds, so the
            # kills below land while jobs are running, whatever the speed of the machine
            enqueue(redis_conn, "jobs.faults.record", rng.choice((0, 0.01, 0.02, 0.05)), queue=rng.choice(queues))
            for _ in range(JOBS)
        ]
        started = time.monotonic()
        kills = 0
        done_key = {job_id: f"rq:job:{job_id}" for job_id in job_ids}

        def unfinished() -> int:
            with redis_conn.pipeline(transaction=False) as pipe:
                for key in done_key.values():
                    pipe.hget(key, "status")
                return sum(1 for value in pipe.execute() if value not in (b"finished", b"failed"))

        while time.monotonic() - started < KILL_SECONDS:
            time.sleep(rng.uniform(0.05, 0.4))
            if unfinished() == 0:
                break  # every kill counted below hit a worker while jobs were still running
            children = [pid for pid in worker_children(redis_conn).values() if parent_of(pid) in ours]
            if children:
                os.kill(rng.choice(children), signal.SIGKILL)
                kills += 1
        kill_phase = time.monotonic() - started
        wait_until(lambda: unfinished() == 0, 60, step=0.5, message="every job finished or failed")
        elapsed = time.monotonic() - started

        outcome = Counter()
        duplicated = retried_attempts = 0
        with redis_conn.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.get(f"faults:runs:{job_id}")
            runs = [int(value or 0) for value in pipe.execute()]
        for job_id, executions in zip(job_ids, runs, strict=True):
            job = fetch(redis_conn, job_id)
            state = job.get_status().value
            outcome[state] += 1
            kinds = [result.type for result in job.results()]
            retried = kinds.count(Result.Type.RETRIED)
            retried_attempts += retried
            duplicated += max(0, executions - 1)
            # A second run only ever follows a recorded retry of a killed attempt.
            assert executions - 1 <= retried, (job_id, executions, kinds)
            if state == "finished":
                assert executions >= 1 and Result.Type.SUCCESSFUL in kinds
            else:
                assert state == "failed", (job_id, state)
                reason = job.meta.get("error", {}).get("message", "")
                assert "died" in reason or "lost heartbeat" in reason or "exited" in reason, (job_id, reason)
        orphans = int(redis_conn.hget("jobsvc:metrics:recovery", "orphan_requeued") or 0)
        report(
            "random_kills_under_load",
            jobs=JOBS,
            workers=6,
            kills=kills,
            lost=JOBS - outcome["finished"] - outcome["failed"],
            finished=outcome["finished"],
            failed_with_reason=outcome["failed"],
            duplicated=duplicated,
            retried_attempts=retried_attempts,
            orphans_requeued=orphans,
            kill_phase_seconds=round(kill_phase, 1),
            total_seconds=round(elapsed, 1),
        )
        assert outcome["finished"] + outcome["failed"] == JOBS
        assert kills >= 12
    finally:
        for process in supervisors:
            process.stop()
