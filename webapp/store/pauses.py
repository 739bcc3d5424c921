"""Paused queues: a hash of queue name -> {"at", "by"} (`jobsvc:queues:paused`), data in Redis.

Pausing a queue stops workers from taking its jobs; submissions are still accepted and kept,
and jobs already running finish. The state is data in Redis, so it holds across web, worker
and Redis restarts (with persistence), for every process at once:
- the fast worker's claim (lua/step.lua) skips a queue named in the hash: one `EXISTS` per
  claim while nothing is paused, plus one `HEXISTS` per queue while something is;
- RQ's own dequeue (webapp/worker/rqworker.py) leaves paused queues out of its `BLPOP`.
A change and its `queue.paused` / `queue.resumed` event are one script (lua/queue_pause.lua);
the events go on a stream and a channel of their own (`jobsvc:queue-events`, the events
channel + `:queues`), like schedule events, so job-event consumers never meet an event without
a job. A resume pushes the queue's wake tokens, so idle workers start at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis import Redis

from webapp.infra.clock import now_iso
from webapp.store import keys, scripts

EVENT_NAMES = ("queue.paused", "queue.resumed")
WAKE_TOKENS = 100  # most wake tokens a resume pushes (one per queued job up to this)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode(raw) -> dict[str, Any]:
    """A stored pause as `{"paused_at", "paused_by"}` (null fields when unreadable)."""
    try:
        stored = json.loads(_text(raw))
    except (TypeError, ValueError):
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    return {"paused_at": stored.get("at"), "paused_by": stored.get("by")}


def read_all(connection: Redis) -> dict[str, dict[str, Any]]:
    """Every paused queue: name -> {"paused_at", "paused_by"} (one round trip)."""
    return {_text(name): decode(raw) for name, raw in connection.hgetall(keys.PAUSED_QUEUES).items()}


def paused_names(connection: Redis) -> set[str]:
    """The names of the paused queues (one round trip)."""
    return {_text(name) for name in connection.hkeys(keys.PAUSED_QUEUES)}


class QueuePauses:
    """Pauses and resumes queues for one process's connection and settings."""

    def __init__(self, connection: Redis, config: Mapping[str, Any]):
        self.connection = connection
        self.channel = keys.queue_events_channel(config)
        self.maxlen = int(config["EVENTS_STREAM_MAXLEN"])
        self.script = scripts.script("queue_pause")

    def set(self, queue: str, paused: bool, by: str | None) -> tuple[bool, dict[str, Any]]:
        """Pause or resume `queue`; (whether it changed, its state: paused, paused_at, paused_by)."""
        at = now_iso()
        event = "queue.paused" if paused else "queue.resumed"
        payload = json.dumps({"event": event, "queue": queue, "by": by, "at": at}, separators=(",", ":"))
        stored = json.dumps({"at": at, "by": by}, separators=(",", ":"))
        changed, raw, _ = self.script(
            keys=[keys.PAUSED_QUEUES, keys.QUEUE_EVENTS_STREAM, keys.queue(queue), keys.wake(queue)],
            args=["pause" if paused else "resume", queue, stored, self.channel, self.maxlen, payload, WAKE_TOKENS],
            client=self.connection,
        )
        if raw:
            return bool(changed), {"paused": True, **decode(raw)}
        return bool(changed), {"paused": False, "paused_at": None, "paused_by": None}

    def events(self, count: int = 100) -> list[dict[str, Any]]:
        """The latest queue events, oldest first, each with its id."""
        entries = self.connection.xrevrange(keys.QUEUE_EVENTS_STREAM, count=count)
        found = []
        for entry_id, fields in reversed(entries):
            event = json.loads(_text(fields[b"data"]))
            found.append({"id": _text(entry_id), **event})
        return found
