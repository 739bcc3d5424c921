"""Operator events: what operators do to the service as a whole, not to one job.

They share one stream and one channel with the queue events (webapp/store/pauses.py): the
stream `jobsvc:queue-events` and the channel `<EVENTS_CHANNEL>:queues`. Their names stay as
they were when they held only `queue.paused` / `queue.resumed`; now they also hold a bulk
action's `bulk.started`, `bulk.progress` and `bulk.finished` (webapp/service/bulk.py). None of
these events carries a job id, so job-event consumers (SSE `/api/events`, webhooks, metrics)
never read them. Each event is one script call (lua/operator_event.lua): appended with its id
and published in one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis import Redis

from webapp.infra.clock import now_iso
from webapp.store import keys, scripts

BULK_EVENT_NAMES = ("bulk.started", "bulk.progress", "bulk.finished")


class OperatorEvents:
    """Writes operator events for one process's connection and settings."""

    def __init__(self, connection: Redis, config: Mapping[str, Any]):
        self.connection = connection
        self.channel = keys.queue_events_channel(config)
        self.maxlen = int(config["EVENTS_STREAM_MAXLEN"])
        self.script = scripts.script("operator_event")

    def record(self, event: str, kind: str, **fields: Any) -> str:
        """Append and publish `{"event": event, **fields, "at": now}`; its id."""
        payload = json.dumps({"event": event, **fields, "at": now_iso()}, separators=(",", ":"))
        found = self.script(
            keys=[keys.QUEUE_EVENTS_STREAM], args=[self.channel, self.maxlen, payload, kind], client=self.connection
        )
        return found.decode() if isinstance(found, bytes) else str(found)
