"""Concurrency and rate limits per key: what the claim enforces (lua/lib/limits.lua) and what
`GET /api/limits` reads.

A job carries its limit in its meta as `{"key", "concurrency", "rate", "per"}` (JSON, so RQ's own
paths, retries and scheduled jobs included, keep it). STEP's claim admits such a job to its key's
slot and rate window, or parks it: RQ then sees a `deferred` job (status and deferred registry),
and the hash says `waiting_for: limit`. Its slot is given back by STEP's finish, by the worker
after any other outcome (`release`), or by recovery when its worker died; each release moves the
key's oldest parked job back to the head of its queue. Jobs without a limit never reach this code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from redis import Redis

from webapp.infra.clock import iso_from_timestamp
from webapp.store import keys, scripts

WAITING_FOR = "limit"  # the `waiting_for` field of a parked job's hash
TICK_KEYS = 64  # keys looked at by one periodic pass


def limit_key(meta: Mapping[str, Any] | None) -> str:
    """The limit key a job's meta carries, or '' when it has none."""
    limit = meta.get("limit") if meta else None
    if isinstance(limit, Mapping) and isinstance(limit.get("key"), str):
        return limit["key"]
    return ""


def release(client, key: str, job_id: str) -> None:
    """Give back the job's slot and wake the key's oldest parked job (idempotent).

    `client` is a connection or a pipeline (recovery releases inside its transaction)."""
    scripts.script("limit_release")(keys=[], args=[key, job_id], client=client)


def unpark(connection: Redis, job) -> None:
    """Take a canceled or deleted job out of its key's parked list (nothing if it has no limit)."""
    key = limit_key(job.meta)
    if key:
        scripts.script("limit_unpark")(keys=[], args=[key, job.id], client=connection)


def tick(connection: Redis, now: float | None = None) -> int:
    """A periodic pass: promote parked jobs whose key admits again; returns how many moved."""
    moment = time.time() if now is None else now
    return int(scripts.script("limit_tick")(keys=[], args=[repr(moment), TICK_KEYS], client=connection))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe_rate(rate: int, per: float) -> str | None:
    """`5/second` from (5, 1); None without a rate."""
    if not rate or not per:
        return None
    unit = {1: "second", 60: "minute", 3600: "hour"}.get(int(per), f"{per:g}s")
    return f"{rate}/{unit}"


def read(connection: Redis, limit: int = 1000) -> list[dict[str, Any]]:
    """Every active key (something running or parked): its counts and latest limit, by key."""
    now = time.time()
    names = sorted(_text(name) for name in connection.zrange(keys.LIMIT_KEYS, 0, limit - 1))
    if not names:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.zcount(keys.limit_running(name), now, "+inf")
            pipe.llen(keys.limit_parked(name))
            pipe.hget(keys.LIMIT_SPECS, name)
            pipe.zscore(keys.LIMIT_DUE, name)
        replies = pipe.execute()
    views = []
    for index, name in enumerate(names):
        running, waiting, spec, due = replies[4 * index : 4 * index + 4]
        concurrency, rate, per = _text(spec).split(" ") if spec else ("0", "0", "0")
        views.append(
            {
                "key": name,
                "running": int(running),
                "waiting": int(waiting),
                "concurrency": int(float(concurrency)) or None,
                "rate": describe_rate(int(float(rate)), float(per)),
                "next_start_at": iso_from_timestamp(float(due)) if due is not None else None,
            }
        )
    return views
