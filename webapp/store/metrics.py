"""The service's counters, read from Redis for `/metrics` (webapp/web/ops.py serves them).

Nothing is counted in process memory: gunicorn runs several web processes and workers run
on other machines, so every number lives in Redis and any web process can answer a scrape.
- Counters of lifecycle events and run durations are kept by the event write itself
  (lua/lib/metrics.lua), so a counter never disagrees with the event log.
- Recovery outcomes are counted by the reaper (webapp/worker/recovery.py).
- Queue depths, the wait of each queue's head job (its `enqueued_at`), paused queues and live
  workers are read from RQ's own keys and the paused-queues hash at scrape time.
- Schedule runs, skips and lags are counted by the schedule's transition script
  (lua/schedule_tick.lua), per schedule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis

from webapp.store import keys, stats
from webapp.store.scripts import DURATION_BUCKETS

QUEUE_STATES = ("queued", "started", "scheduled", "deferred", "finished", "failed")
COUNTED_EVENTS = ("queued", "started", "finished", "failed", "retrying", "abandoned", "stopped")
RECOVERY_OUTCOMES = ("retried", "failed", "handed_back", "requeued_unstarted", "orphan_requeued")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Snapshot:
    """Every sample of one scrape."""

    depths: dict[str, dict[str, int]]  # queue -> state -> jobs
    oldest_ages: dict[str, float]  # queue -> seconds its head job has waited (0 when empty; absent: unknown)
    paused: set[str]
    events: dict[str, int]
    duration_buckets: list[tuple[str, int]]  # cumulative, ending with +Inf
    duration_sum: float
    recovered: dict[str, int]
    workers_alive: int
    schedules: dict[str, dict[str, float]]  # schedule -> counter ("schedule.run", "skipped:<reason>", lag_sum, ...)


def read(connection: Redis, queue_names: list[str]) -> Snapshot:
    """Read every sample in two round trips."""
    with connection.pipeline(transaction=False) as pipe:
        for name in queue_names:
            pipe.llen(keys.queue(name))
            for state in QUEUE_STATES[1:]:
                pipe.zcard(keys.registry(state, name))
        for name in queue_names:
            pipe.lindex(keys.queue(name), 0)
        pipe.hgetall(keys.METRICS_EVENTS)
        pipe.hgetall(keys.METRICS_DURATION)
        pipe.hgetall(keys.METRICS_RECOVERY)
        pipe.smembers(keys.WORKERS)
        pipe.hgetall(keys.METRICS_SCHEDULES)
        pipe.hkeys(keys.PAUSED_QUEUES)
        replies = pipe.execute()
    now = time.time()
    width = len(QUEUE_STATES)
    depths = {
        name: dict(zip(QUEUE_STATES, replies[width * index : width * (index + 1)], strict=True))
        for index, name in enumerate(queue_names)
    }
    rest = replies[width * len(queue_names) :]
    heads, rest = rest[: len(queue_names)], rest[len(queue_names) :]
    events, durations, recovery, worker_keys, schedule_counters, paused = rest
    worker_keys = sorted(_text(key) for key in worker_keys)
    waiting = [(name, _text(head)) for name, head in zip(queue_names, heads, strict=True) if head]
    alive, enqueued = 0, []
    if worker_keys or waiting:
        with connection.pipeline(transaction=False) as pipe:
            for _, job_id in waiting:
                pipe.hget(keys.job(job_id), "enqueued_at")
            for key in worker_keys:
                pipe.exists(key)
            second = pipe.execute()
        enqueued, alive = second[: len(waiting)], sum(second[len(waiting) :])
    ages = {name: 0.0 for name in queue_names}
    for (name, _), raw in zip(waiting, enqueued, strict=True):
        age = stats.age_of(raw, now)
        if age is None:
            ages.pop(name)
        else:
            ages[name] = age
    counted = {_text(name): int(value) for name, value in events.items()}
    buckets = {_text(name): value for name, value in durations.items()}
    cumulative, running = [], 0
    for bound in (*DURATION_BUCKETS, "+Inf"):
        running += int(buckets.get(bound, 0))
        cumulative.append((bound, running))
    outcomes = {_text(name): int(value) for name, value in recovery.items()}
    return Snapshot(
        depths=depths,
        oldest_ages=ages,
        paused={_text(name) for name in paused},
        events={name: counted.get(name, 0) for name in COUNTED_EVENTS},
        duration_buckets=cumulative,
        # whole microseconds (an integer HINCRBY in the event script); `sum`, seconds as a float,
        # is what earlier versions wrote
        duration_sum=int(buckets.get("sum_us", 0) or 0) / 1_000_000 + float(buckets.get("sum", 0) or 0),
        recovered={outcome: outcomes.get(outcome, 0) for outcome in RECOVERY_OUTCOMES},
        workers_alive=alive,
        schedules=_per_schedule(schedule_counters),
    )


def _per_schedule(raw: dict) -> dict[str, dict[str, float]]:
    """The schedule counters hash ("<schedule>\t<counter>" -> value) by schedule."""
    found: dict[str, dict[str, float]] = {}
    for raw_field, raw_value in raw.items():
        schedule, _, counter = _text(raw_field).partition("\t")
        found.setdefault(schedule, {})[counter] = float(_text(raw_value))
    return found
