"""Waiting jobs: cancel a queued one atomically (lua/cancel_queued.lua).

RQ's `Job.cancel` takes a job out of its queue with `LREM key 1 id`, which scans the list from
its head, and marks the job canceled whether or not a worker took it meanwhile. For a queued
job the service uses this script instead: one step that removes it scanning from the tail
(where a newest-first bulk walk finds it at once) and marks it canceled only if it was there.
"""

from __future__ import annotations

import time

from redis.client import Pipeline

from webapp.store import keys, scripts


def cancel_queued(pipe: Pipeline, job_id: str, queue_name: str) -> None:
    """Queue the cancel of one queued job on `pipe`; its reply is 1 (canceled) or 0 (not queued)."""
    scripts.script("cancel_queued")(
        keys=[keys.queue(queue_name), keys.job(job_id), keys.registry("canceled", queue_name)],
        args=[job_id, int(time.time())],
        client=pipe,
    )
