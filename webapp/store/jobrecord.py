"""RQ's job hash for a queued job, written directly instead of through RQ's `Job` objects.

Building a `Job`, then `Queue.enqueue_call` recording its writes on a redis-py pipeline, was
most of the web's CPU per submission (bench/submit_cost.py). A queued job without
dependencies is just a few commands: register the queue, write the job hash, push the id.
`queued_job` returns them as one `JOB` command of the submit script: the values here, the
field names in lua/lib/queued_job.lua, which writes exactly what RQ writes (same names, same
text formats, the job data compressed as RQ compresses it), so RQ's workers, `Job.fetch`,
rq-dashboard and our own workers read these jobs like any other. (Sent as RQ's field names
and values, the job and its wake token took 55 of a submission's 100 arguments; as values, 15 of 60: Redis parses
4 % fewer instructions per submission, docs/benchmarks-history.md, "fourth round".)

tests/test_jobrecord_compat.py writes jobs both ways against the pinned RQ and compares the
hashes, so an RQ upgrade that changes the format fails there, loudly, before it reaches a
worker. Scheduled jobs and jobs with dependencies still take RQ's own code (webapp/service/submit.py).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rq.job import Retry
from rq.utils import get_call_string

# RQ's timestamp text (rq.utils.utcformat), microseconds and a literal Z.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def queued_job(
    job_id: str,
    func_path: str,
    kwargs: Mapping[str, Any],
    meta: Mapping[str, Any],
    queue_name: str,
    options: Mapping[str, Any],
    default_timeout: int,
    now: datetime | None = None,
) -> tuple:
    """The submit script's `JOB` command that enqueues one job as
    `Queue.enqueue_call(func_path, kwargs=..., **options)` does (lua/lib/queued_job.lua).

    `options` are the planned RQ options: timeout, result_ttl, failure_ttl, ttl, description
    (None = unset) and an optional `retry` (rq.Retry). Every value goes as text: hiredis packs
    a command holding integers at half the speed."""
    stamp = (now or datetime.now(UTC)).strftime(TIMESTAMP_FORMAT)
    data = zlib.compress(json.dumps([func_path, None, [], dict(kwargs)]).encode())
    retry: Retry | None = options.get("retry")
    description = options.get("description") or get_call_string(func_path, (), kwargs, max_length=75)
    timeout = options.get("timeout")
    return (
        "JOB",
        queue_name,
        job_id,
        stamp,
        data,
        description,
        str(default_timeout if timeout is None else timeout),
        _text(options.get("result_ttl")),
        _text(options.get("failure_ttl")),
        _text(options.get("ttl") or None),
        "" if retry is None else str(retry.max),
        "" if retry is None else json.dumps(retry.intervals),
        "1" if retry is not None and retry.enqueue_at_front else "",
        json.dumps(dict(meta)).encode() if meta else "",
    )


def _text(value: int | None) -> str:
    return "" if value is None else str(value)
