"""Reading the event streams: entries as (id, event, SSE frame), and the shared `StreamTail`.

Live clients of the same stream share its reads: a `StreamTail` keeps the stream's recent
entries (rendered once as SSE frames) and is refreshed by whichever client needs it first
after a wake-up, so one published event costs one XRANGE per stream and process, not one
per client.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque

from redis import Redis

from webapp.store.events import BATCH, EventId, decode_entries, format_event_id, xrange_after

TAIL_SIZE = 512  # recent entries a StreamTail keeps

Entry = tuple[EventId, dict, str]  # (id, event, SSE frame)


def sse_frame(event: dict) -> str:
    """One event as a Server-Sent Events frame: its id, its name, its JSON on one line."""
    return f"id: {event['id']}\nevent: {event['event']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def to_entries(raw: list) -> list[Entry]:
    """XRANGE's reply as entries, each rendered once as its SSE frame."""
    return [(event_id, event, sse_frame(event)) for event_id, event in decode_entries(raw)]


def read_entries(reader: Redis, key: str, after: EventId | None, count: int = BATCH) -> list[Entry]:
    """Up to `count` entries of stream `key` after `after` (from its start when None)."""
    return to_entries(reader.xrange(key, min=xrange_after(after), max="+", count=count))


class StreamTail:
    """The recent entries of one stream, shared by this process's live clients of it.

    It covers the ids in (`base`, `top`], contiguously: it only ever reads after `top`.
    A read is skipped when one that started after the caller's wake-up already happened
    (`Hub.publications` counts notifications, so a read that began when the count was at
    least the caller's saw every event the caller was woken for).
    """

    def __init__(self, key: str):
        self.key = key
        self.lock = threading.Lock()
        self.entries: deque[Entry] = deque()
        self.base: EventId | None = None
        self.top: EventId | None = None
        self.read_seq = -1
        self.read_at = 0.0
        self.more = False
        self.users = 0

    def after(self, reader: Redis, last: EventId | None, seq: int, max_age: float) -> tuple[list[Entry], bool] | None:
        """Entries after `last` and whether more may follow; None if `last` is before the tail."""
        with self.lock:
            if self.base is None:
                if last is None:
                    return None
                self.base = self.top = last  # the first client's position starts the tail
            if last is None or last < self.base:
                return None
            if self.more or self.read_seq < seq or time.monotonic() - self.read_at > max_age:
                if not self._refresh(reader, seq):
                    return None
            newer = []
            for entry in reversed(self.entries):  # live clients want the last few: scan from the end
                if entry[0] <= last:
                    break
                newer.append(entry)
            newer.reverse()
            return newer, self.more

    def _refresh(self, reader: Redis, seq: int) -> bool:
        """Read what follows `top`; False (and the tail starts over) if `top` was trimmed away.

        The read includes `top` itself: finding it proves nothing between it and the new
        entries was trimmed before the tail read them (the tail never skips silently).
        """
        read_at = time.monotonic()
        contiguous_check = self.top is not None and self.top != (0, 0)
        start = "-" if self.top is None else format_event_id(self.top) if contiguous_check else "(0-0"
        fresh = to_entries(reader.xrange(self.key, min=start, max="+", count=BATCH + 1))
        if contiguous_check:
            if not fresh or fresh[0][0] != self.top:
                self.entries.clear()
                self.base = self.top = None
                self.read_seq, self.more = -1, False
                return False
            fresh = fresh[1:]
        self.read_seq, self.read_at, self.more = seq, read_at, len(fresh) >= BATCH
        self.entries.extend(fresh)
        if fresh:
            self.top = fresh[-1][0]
        while len(self.entries) > TAIL_SIZE:
            self.base = self.entries.popleft()[0]
        return True
