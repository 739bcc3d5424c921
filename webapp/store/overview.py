"""Queues and workers at a glance: counts per state and worker records, each in one pipeline."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.queue import Queue
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.utils import utcparse
from rq.worker import Worker
from rq.worker_registration import REDIS_WORKER_KEYS

from webapp.jobstore import isoformat

# Registries scored by expiry time: entries below "now" are expired but not yet cleaned up by a
# worker's maintenance, so only the ones above "now" count. Scheduled and deferred jobs are
# scored by when they run or were deferred, so all of them count.
EXPIRING = {
    "started": StartedJobRegistry,
    "finished": FinishedJobRegistry,
    "failed": FailedJobRegistry,
    "canceled": CanceledJobRegistry,
}
PENDING = {"scheduled": ScheduledJobRegistry, "deferred": DeferredJobRegistry}
STATES = ("queued", *EXPIRING, *PENDING)


def queue_counts(connection: Redis, queues: Iterable[str]) -> list[dict[str, Any]]:
    """Jobs per state for each queue, in the order the queues are configured."""
    names = list(queues)
    now = time.time()
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(Queue.redis_queue_namespace_prefix + name)
            for registry in EXPIRING.values():
                pipe.zcount(registry.key_template.format(name), now, "+inf")
            for registry in PENDING.values():
                pipe.zcard(registry.key_template.format(name))
        replies = pipe.execute()
    width = len(STATES)
    return [
        {"name": name, "counts": dict(zip(STATES, replies[i * width : (i + 1) * width], strict=True))}
        for i, name in enumerate(names)
    ]


def _text(raw: dict, field: bytes) -> str | None:
    value = raw.get(field)
    return value.decode() if value else None


def _int(raw: dict, field: bytes) -> int:
    value = raw.get(field)
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def _worker_view(name: str, raw: dict, executions: set[bytes]) -> dict[str, Any]:
    heartbeat = _text(raw, b"last_heartbeat")
    pid = _int(raw, b"pid")
    # An execution is "<job id>:<execution id>"; a worker here runs one job at a time.
    running = sorted(member.decode().split(":", 1)[0] for member in executions)
    return {
        "name": name,
        "state": _text(raw, b"state") or "unknown",
        "queues": (_text(raw, b"queues") or "").split(",") if raw.get(b"queues") else [],
        "current_job": running[0] if running else None,
        "successful_jobs": _int(raw, b"successful_job_count"),
        "failed_jobs": _int(raw, b"failed_job_count"),
        "last_heartbeat": isoformat(utcparse(heartbeat)) if heartbeat else None,
        "pid": pid or None,
        "hostname": _text(raw, b"hostname"),
    }


def workers(connection: Redis) -> list[dict[str, Any]]:
    """Every registered worker, by name; workers whose record expired are left out."""
    keys = sorted(member.decode() for member in connection.smembers(REDIS_WORKER_KEYS))
    names = [key.removeprefix(Worker.redis_worker_namespace_prefix) for key in keys]
    if not keys:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for key, name in zip(keys, names, strict=True):
            pipe.hgetall(key)
            pipe.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(name))
        replies = pipe.execute()
    views = []
    for index, name in enumerate(names):
        raw, executions = replies[2 * index], replies[2 * index + 1]
        if raw:
            views.append(_worker_view(name, raw, executions))
    return views
