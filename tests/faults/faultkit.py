"""Helpers of the fault-injection suite: enqueue like the service, poll, inspect attempts,
and write each scenario's measured figures to var/faults/<scenario>.json (RELIABILITY.md)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from redis import Redis
from rq import Queue, Retry
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from tests.servers import ROOT
from webapp.infra import config as settings
from webapp.store import keys
from webapp.store.events import EventLog

RESULTS_DIR = ROOT / "var" / "faults"
TERMINAL = {"finished", "failed", "stopped", "canceled"}


def service_config(redis_url: str, **overrides) -> dict:
    values = settings.from_environ({})
    values.update(REDIS_URL=redis_url, **overrides)
    return values


def enqueue(connection: Redis, func: str, *args, queue: str = "default", retries: int = 1, timeout=None) -> str:
    """Enqueue like JobService.submit (job + `queued` event in one transaction)."""
    config = service_config("redis://unused")
    target = Queue(queue, connection=connection, serializer=JSONSerializer)
    events = EventLog.from_config(connection, config)
    with connection.pipeline() as pipe:
        job = target.enqueue_call(
            func=func,
            args=args,
            timeout=timeout,
            result_ttl=3600,
            failure_ttl=3600,
            retry=Retry(max=retries) if retries else None,
            meta={"name": func.rsplit(".", 1)[-1]},
            pipeline=pipe,
        )
        events.append("queued", job_id=job.id, name=job.meta["name"], queue=queue, status="queued", pipeline=pipe)
        pipe.execute()
    return job.id


def fetch(connection: Redis, job_id: str) -> Job:
    return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)


def status(connection: Redis, job_id: str) -> str:
    value = connection.hget(f"rq:job:{job_id}", "status")
    return value.decode() if value else "missing"


def wait_until(predicate, timeout: float = 30.0, step: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout} s")
        time.sleep(step)


def wait_status(connection: Redis, job_id: str, statuses=("finished", "failed"), timeout: float = 30.0) -> str:
    wait_until(lambda: status(connection, job_id) in statuses, timeout, message=f"job {job_id} in {statuses}")
    return status(connection, job_id)


def runs(connection: Redis, job_id: str) -> int:
    return int(connection.get(f"faults:runs:{job_id}") or 0)


def attempts(connection: Redis, job_id: str) -> list[tuple[str, str]]:
    """The job's RQ result history, oldest first, as (type, text)."""
    out = []
    for result in reversed(fetch(connection, job_id).results()):
        text = result.exc_string or ""
        out.append((Result.Type(result.type).name, text))
    return out


def events(connection: Redis, job_id: str) -> list[dict]:
    return [json.loads(fields[b"data"]) for _, fields in connection.xrange(keys.job_events(job_id))]


def worker_children(connection: Redis) -> dict[str, int]:
    """Live worker name -> pid, from RQ's worker registrations."""
    found = {}
    for key in connection.smembers("rq:workers"):
        pid = connection.hget(key, "pid")
        if pid:
            found[key.decode().removeprefix("rq:worker:")] = int(pid)
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def report(scenario: str, **figures) -> dict:
    """Write this run's figures where RELIABILITY.md's numbers come from, and print them."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    figures = {"scenario": scenario, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    path = RESULTS_DIR / f"{scenario}.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(figures)
    path.write_text(json.dumps(history[-20:], indent=1))
    print("FAULTS", json.dumps(figures))
    return figures


def abandon_after() -> float:
    return 10.0 if os.environ.get("FAULT_DEFAULT_TIMINGS") else 4.0


def fault_env(**extra: str) -> dict[str, str]:
    """Worker settings the suite uses: quick recovery so the tests stay short
    (FAULT_DEFAULT_TIMINGS=1 keeps the shipped ABANDON_AFTER and RECOVERY_INTERVAL)."""
    env = {"ABANDON_AFTER": "4", "RECOVERY_INTERVAL": "1", "JOB_KILL_GRACE": "2", "WORKER_SHUTDOWN_GRACE": "5"}
    # The suite's jobs (jobs/faults.py) are enqueued with plain RQ, outside the allow-list.
    env["WORKER_ALLOWED_PREFIXES"] = "jobs.faults."
    if os.environ.get("FAULT_DEFAULT_TIMINGS"):
        del env["ABANDON_AFTER"], env["RECOVERY_INTERVAL"]
    env.update(extra)
    return env


__all__ = ["Path"]
