"""Per-minute history for the overview charts, kept in Redis by the paths that already run.

Shared by every web process and machine and surviving their restarts, nothing in memory:
- counters: the event script (lua/lib/metrics.lua) adds each `finished` and `failed` event to
  its minute, `HINCRBY jobsvc:stats:<hour> <minute>:<event> 1`, plus an EXPIRE the first time a
  minute's field is written (about one command per terminal event);
- gauges: each queue's depth and the age of the job at its head (the wait of the next job to
  run: jobs leave a queue from its head), and the workers alive, sampled every
  STATS_SAMPLE_INTERVAL seconds into the minute's `<minute>:gauges` field (its latest sample).
  Every `worker.py` supervisor tries each interval (and the web when asked for stats), and a
  `SET NX PX` claim lets exactly one of them sample.
An hour's hash holds at most 180 small fields and expires RETENTION after its last write.
`series` reads a window (the last hour by minute, the last day by 10 minutes) in one round
trip: a coarse step sums the counters and keeps the highest sample of each gauge.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from redis import Redis

from webapp.infra.clock import iso_from_timestamp
from webapp.store import keys

RETENTION = 26 * 3600  # seconds: the day window, plus the hour a key spans, plus margin
COUNTED = ("finished", "failed")
WINDOWS = {"1h": (3600, 60), "1d": (86400, 600)}  # window -> (span, step) in seconds


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _age(enqueued_at: bytes | None, now: float) -> float | None:
    if not enqueued_at:
        return None
    try:
        moment = datetime.fromisoformat(_text(enqueued_at).replace("Z", "+00:00"))
    except ValueError:
        return None
    return round(max(0.0, now - moment.timestamp()), 1)


def head_ages(connection: Redis, heads: Sequence, now: float) -> list[float | None]:
    """The wait of each queue's head job (`LINDEX 0` replies; None: empty or unknown), one round trip."""
    present = [_text(head) for head in heads if head]
    if not present:
        return [None] * len(heads)
    with connection.pipeline(transaction=False) as pipe:
        for job_id in present:
            pipe.hget(keys.job(job_id), "enqueued_at")
        enqueued = iter(pipe.execute())
    return [_age(next(enqueued), now) if head else None for head in heads]


def age_of(enqueued_at: bytes | None, now: float) -> float | None:
    """Seconds since a job hash's `enqueued_at` (RQ's text), to 0.1 s; None when unreadable."""
    return _age(enqueued_at, now)


def read_gauges(connection: Redis, queues: Sequence[str], now: float | None = None) -> dict[str, Any]:
    """Depth and head-of-queue wait of each queue, and the workers alive, now (two round trips)."""
    now = time.time() if now is None else now
    with connection.pipeline(transaction=False) as pipe:
        for name in queues:
            pipe.llen(keys.queue(name))
            pipe.lindex(keys.queue(name), 0)
        pipe.smembers(keys.WORKERS)
        replies = pipe.execute()
    depths, heads = replies[0:-1:2], replies[1:-1:2]
    worker_keys = sorted(_text(key) for key in replies[-1])
    with connection.pipeline(transaction=False) as pipe:
        for head in heads:
            if head:
                pipe.hget(keys.job(_text(head)), "enqueued_at")
        for key in worker_keys:
            pipe.exists(key)
        second = pipe.execute()
    enqueued = iter(second[: sum(1 for head in heads if head)])
    alive = sum(second[len(second) - len(worker_keys) :]) if worker_keys else 0
    result = {}
    for name, depth, head in zip(queues, depths, heads, strict=True):
        age = _age(next(enqueued), now) if head else None
        result[name] = {"depth": int(depth), "oldest_age": age if depth else 0.0}
    return {"workers": int(alive), "queues": result}


def sample_if_due(connection: Redis, queues: Sequence[str], interval: float, now: float | None = None) -> bool:
    """Record the gauges in the current minute, unless another process did this interval."""
    if not connection.set(keys.STATS_SAMPLED, 1, nx=True, px=max(100, int(interval * 1000))):
        return False
    now = time.time() if now is None else now
    gauges = read_gauges(connection, queues, now)
    minute = int(now // 60)
    key = keys.stats_hour(minute // 60)
    with connection.pipeline(transaction=False) as pipe:
        pipe.hset(key, f"{minute}:gauges", json.dumps(gauges, separators=(",", ":")))
        pipe.expire(key, RETENTION)
        pipe.execute()
    return True


def _hours(first_minute: int, last_minute: int) -> Iterable[int]:
    return range(first_minute // 60, last_minute // 60 + 1)


def series(connection: Redis, queues: Sequence[str], window: str, now: float | None = None) -> dict[str, Any]:
    """The window's points, oldest first: per step, jobs finished and failed, and the gauges."""
    span, step = WINDOWS[window]
    now = time.time() if now is None else now
    last_start = int(now // step) * step
    first_start = last_start - span + step
    first_minute, last_minute = first_start // 60, int(now // 60)
    with connection.pipeline(transaction=False) as pipe:
        for hour in _hours(first_minute, last_minute):
            pipe.hgetall(keys.stats_hour(hour))
        hashes = pipe.execute()
    points = [_empty_point(start, queues) for start in range(first_start, last_start + 1, step)]
    for fields in hashes:
        for raw_field, raw_value in fields.items():
            minute_text, _, kind = _text(raw_field).partition(":")
            try:
                minute = int(minute_text)
            except ValueError:
                continue
            if not first_minute <= minute <= last_minute:
                continue
            point = points[(minute * 60 - first_start) // step]
            if kind in COUNTED:
                point[kind] += int(raw_value)
            elif kind == "gauges":
                _merge_gauges(point, raw_value, queues)
    return {"window": window, "step": step, "points": points}


def _empty_point(start: int, queues: Sequence[str]) -> dict[str, Any]:
    return {
        "at": iso_from_timestamp(start),
        "finished": 0,
        "failed": 0,
        "workers": None,
        "queues": {name: {"depth": None, "oldest_age": None} for name in queues},
    }


def _highest(current, new):
    if new is None:
        return current
    return new if current is None else max(current, new)


def _merge_gauges(point: dict[str, Any], raw: bytes | str, queues: Sequence[str]) -> None:
    """Fold one minute's sample into its point: the highest value of the step (no sample: None)."""
    try:
        sample = json.loads(raw)
        point["workers"] = _highest(point["workers"], int(sample.get("workers", 0)))
        for name in queues:
            values = sample.get("queues", {}).get(name)
            if isinstance(values, dict):
                gauges = point["queues"][name]
                gauges["depth"] = _highest(gauges["depth"], values.get("depth"))
                gauges["oldest_age"] = _highest(gauges["oldest_age"], values.get("oldest_age"))
    except (ValueError, TypeError, AttributeError):
        return
