"""Queues and workers at a glance: counts per state and worker records, each in one pipeline."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq.utils import utcparse

from webapp.infra.clock import iso
from webapp.store import keys, pauses, stats

# Registries scored by expiry time: entries below "now" are expired but not yet cleaned up by a
# worker's maintenance, so only the ones above "now" count. Scheduled and deferred jobs are
# scored by when they run or were deferred, so all of them count.
EXPIRING = ("started", "finished", "failed", "canceled")
PENDING = ("scheduled", "deferred")
STATES = ("queued", *EXPIRING, *PENDING)


def queue_counts(connection: Redis, queues: Iterable[str]) -> list[dict[str, Any]]:
    """Each queue, in the order the queues are configured: jobs per state, depth, the wait of the
    job at its head (seconds; 0 when empty) and whether it is paused (two round trips)."""
    names = list(queues)
    now = time.time()
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(keys.queue(name))
            for state in EXPIRING:
                pipe.zcount(keys.registry(state, name), now, "+inf")
            for state in PENDING:
                pipe.zcard(keys.registry(state, name))
            pipe.lindex(keys.queue(name), 0)
        pipe.hgetall(keys.PAUSED_QUEUES)
        replies = pipe.execute()
    width = len(STATES) + 1
    paused = {_decoded(name): raw for name, raw in replies[-1].items()}
    heads = [replies[i * width + width - 1] for i in range(len(names))]
    ages = stats.head_ages(connection, heads, now)
    views = []
    for i, name in enumerate(names):
        counts = dict(zip(STATES, replies[i * width : i * width + len(STATES)], strict=True))
        pause = pauses.decode(paused[name]) if name in paused else {"paused_at": None, "paused_by": None}
        views.append({
            "name": name,
            "counts": counts,
            "depth": counts["queued"],
            "oldest_age": ages[i] if counts["queued"] else 0.0,
            "paused": name in paused,
            **pause,
        })  # fmt: skip
    return views


def _decoded(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
        "last_heartbeat": iso(utcparse(heartbeat)) if heartbeat else None,
        "pid": pid or None,
        "hostname": _text(raw, b"hostname"),
    }


def workers(connection: Redis) -> list[dict[str, Any]]:
    """Every registered worker, by name; workers whose record expired are left out."""
    worker_keys = sorted(member.decode() for member in connection.smembers(keys.WORKERS))
    names = [key.removeprefix(keys.WORKER_PREFIX) for key in worker_keys]
    if not worker_keys:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for key, name in zip(worker_keys, names, strict=True):
            pipe.hgetall(key)
            pipe.smembers(keys.worker_executions(name))
        replies = pipe.execute()
    views = []
    for index, name in enumerate(names):
        raw, executions = replies[2 * index], replies[2 * index + 1]
        if raw:
            views.append(_worker_view(name, raw, executions))
    return views
