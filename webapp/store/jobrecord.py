"""RQ's job hash for a queued job, written directly instead of through RQ's `Job` objects.

Building a `Job`, then `Queue.enqueue_call` recording its writes on a redis-py pipeline, was
most of the web's CPU per submission (bench/submit_cost.py). A queued job without
dependencies is just a few commands: register the queue, write the job hash, push the id.
`queued_job_commands` returns exactly those commands, field for field what RQ writes (same
names, same text formats, the job data compressed as RQ compresses it), so RQ's workers,
`Job.fetch`, rq-dashboard and our own workers read these jobs like any other.

tests/test_rq_compat.py writes jobs both ways against the pinned RQ and compares the
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

from webapp.store import keys

# RQ's timestamp text (rq.utils.utcformat), microseconds and a literal Z.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Fields RQ writes as empty strings on a job that has not run yet.
_NOT_YET = (
    "success_callback_name",
    "failure_callback_name",
    "stopped_callback_name",
    "started_at",
    "ended_at",
    "last_heartbeat",
    "worker_name",
    "group_id",
)


def queued_job_commands(
    job_id: str,
    func_path: str,
    kwargs: Mapping[str, Any],
    meta: Mapping[str, Any],
    queue_name: str,
    options: Mapping[str, Any],
    default_timeout: int,
    now: datetime | None = None,
) -> list[tuple]:
    """The commands that enqueue one job as `Queue.enqueue_call(func_path, kwargs=..., **options)` does.

    `options` are the planned RQ options: timeout, result_ttl, failure_ttl, ttl, description
    (None = unset) and an optional `retry` (rq.Retry).
    """
    stamp = (now or datetime.now(UTC)).strftime(TIMESTAMP_FORMAT)
    key = keys.job(job_id)
    data = json.dumps([func_path, None, [], dict(kwargs)]).encode()
    fields: list[Any] = ["created_at", stamp, "data", zlib.compress(data)]
    for name in _NOT_YET:
        fields += [name, ""]
    retry: Retry | None = options.get("retry")
    if retry is not None:
        fields += ["retries_left", retry.max, "retry_intervals", json.dumps(retry.intervals)]
        if retry.enqueue_at_front:
            fields += ["enqueue_at_front_on_retry", 1]
    description = options.get("description") or get_call_string(func_path, (), kwargs, max_length=75)
    timeout = options.get("timeout")
    fields += [
        "origin",
        queue_name,
        "description",
        description,
        "enqueued_at",
        stamp,
        "timeout",
        default_timeout if timeout is None else timeout,
    ]
    for option in ("result_ttl", "failure_ttl"):
        if options.get(option) is not None:
            fields += [option, options[option]]
    fields += ["status", "queued"]
    if meta:
        fields += ["meta", json.dumps(dict(meta)).encode()]
    ttl = options.get("ttl")
    if ttl:
        fields += ["ttl", ttl]
    queue_key = keys.queue(queue_name)
    commands: list[tuple] = [("SADD", keys.QUEUES, queue_key), ("HSET", key, *fields)]
    if ttl:
        # As RQ's Job.cleanup(ttl): the job and its dependency sets expire together.
        commands += [
            ("EXPIRE", key, ttl),
            ("EXPIRE", keys.dependents(job_id), ttl),
            ("EXPIRE", keys.dependencies(job_id), ttl),
        ]
    commands.append(("RPUSH", queue_key, job_id))
    return commands
