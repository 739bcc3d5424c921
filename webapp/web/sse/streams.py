"""Server-Sent Event streams: one job's timeline, every job's events, the demo channel.

The Redis streams are the source of truth; pub/sub (through the process's `Hub`) only says
"read again". Each stream registers its wake-up BEFORE its first read, then reads the
stream after the last id it delivered on every wake-up and every `SSE_POLL_INTERVAL`: an
event is either in a read or published after the registration, so none is lost between the
replay and the live part, and none is sent twice (reads start after the last id sent).

Frames: `id: <event id>`, `event: <event name>`, `data: <event JSON>`; `retry:` once at the
start, `: keep-alive` comments when idle for `HEARTBEAT_INTERVAL`.

The streams live under /api, so the API's authentication gate covers them (webapp/web/auth.py);
with API keys, a job's stream is a 404 for anyone but its owner (and admins), and `/api/events`
carries only the caller's own jobs.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, current_app, request
from redis import Redis
from redis.exceptions import RedisError, ResponseError

from webapp.infra.errors import BadRequest, ValidationFailed
from webapp.service.access import owner_filter
from webapp.store import keys
from webapp.store.events import (
    BATCH,
    EVENT_NAMES,
    EventId,
    decode_entry,
    format_event_id,
    is_terminal,
    parse_event_id,
    xrange_after,
)
from webapp.store.jobreads import not_found
from webapp.web import schemas
from webapp.web.auth import caller
from webapp.web.extensions import get_service
from webapp.web.openapi import RESUME_FROM_PATTERN, comma_list_pattern, parse_query, spec
from webapp.web.sse.hub import Hub, Subscription, get_hub
from webapp.web.sse.tails import Entry, StreamTail, read_entries, to_entries

log = logging.getLogger("webapp.streams")

bp = Blueprint("streams", __name__, url_prefix="/api")


# -- request parsing --------------------------------------------------------------------


LAST_EVENT_ID = {
    "Last-Event-ID": {
        "description": "Resume after this event id (EventSource sends it when it reconnects); empty: start afresh.",
        "schema": {"type": "string", "pattern": RESUME_FROM_PATTERN},
    }
}


def requested_event_id(query_value: str | None) -> EventId | None:
    """The `Last-Event-ID` header (what EventSource sends on reconnect), else `?last_event_id=`."""
    raw = request.headers.get("Last-Event-ID", "").strip() or query_value
    if not raw:
        return None
    try:
        return parse_event_id(raw)
    except ValueError:
        raise BadRequest(
            f"invalid Last-Event-ID {raw[:64]!r}: send the `id:` of the last event received, "
            "like 1795482400620-0, or nothing to start from the beginning"
        ) from None


def comma_list(param: str, raw: str | None, allowed: list[str], what: str) -> frozenset[str] | None:
    """A comma-separated filter (no spaces), each value one of `allowed`; empty = no filter."""
    if not raw:
        return None
    if not re.fullmatch(comma_list_pattern(allowed), raw):
        raise ValidationFailed(
            f"?{param}={raw[:64]!r}: give {what}s separated by commas, without spaces; "
            f"valid values are {', '.join(allowed)}"
        )
    return frozenset(raw.split(","))


# -- stream helpers ---------------------------------------------------------------------


def stream_info(info) -> dict | None:
    """XINFO STREAM's reply, or None when the stream does not exist (yet, or any more)."""
    if info is None or isinstance(info, ResponseError):
        return None
    if isinstance(info, Exception):
        raise info
    return info


def _id_of(value) -> EventId:
    return parse_event_id(value.decode() if isinstance(value, bytes) else value)


def gap_frame(info: dict | None, requested: EventId | None) -> str | None:
    """`event: gap` when events after `requested` were trimmed away before this client read them."""
    if info is None:
        return None
    trimmed = int(info.get("entries-added", info["length"])) - int(info["length"])
    if trimmed <= 0:
        return None
    first = info.get("first-entry")
    oldest = _id_of(first[0]) if first else None
    if requested is not None and oldest is not None and requested >= oldest:
        return None
    if requested is not None and oldest is None and requested >= _id_of(info["last-generated-id"]):
        return None
    data = {
        "requested": format_event_id(requested) if requested is not None else None,
        "oldest": format_event_id(oldest) if oldest is not None else None,
    }
    return f"event: gap\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class EventStream:
    """A streaming body that gives back its hub resources when closed, even if never iterated."""

    def __init__(self, hub: Hub, subscription: Subscription, frames: Iterator[str], tail: StreamTail | None = None):
        self.hub = hub
        self.subscription = subscription
        self.frames = frames
        self.tail = tail

    def __iter__(self):
        return self.frames

    def close(self) -> None:
        try:
            self.frames.close()
        finally:
            self.hub.unsubscribe(self.subscription)
            if self.tail is not None:
                self.hub.release_tail(self.tail)


def sse_response(body: EventStream) -> Response:
    response = Response(body, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # tell nginx-like proxies not to buffer
    return response


class Follow:
    """The loop shared by the job and global streams: read after `last`, send, wait, repeat."""

    def __init__(
        self, hub: Hub, subscription: Subscription, key: str, last: EventId | None, config, first: str | None = None
    ):
        self.hub = hub
        self.subscription = subscription
        self.key = key
        self.last = last
        self.tail = hub.tail(key)
        self.check_gap = True  # the first direct read checks whether `last` is still retained
        self.from_tail = False
        self.heartbeat = float(config["HEARTBEAT_INTERVAL"])
        self.poll = float(config["SSE_POLL_INTERVAL"])
        self.retry_ms = int(config["SSE_RETRY_MS"])
        self.first = first  # a frame sent before any event (a gap, when the client's id is unknown)

    def read(self) -> tuple[list[Entry], bool, str | None]:
        """Entries after the last one sent, whether more follow, and a gap frame if some are lost.

        From the shared tail when it covers the position (live clients), else from Redis:
        then, on the first read and while catching up, the stream's bounds are read in the
        same transaction, so a position older than the oldest kept entry is reported.
        """
        seq = self.hub.publications  # before reading: see StreamTail
        shared = self.tail.after(self.hub.reader, self.last, seq, max_age=self.poll / 2)
        if shared is not None:
            self.from_tail = True
            return *shared, None
        if self.from_tail:  # left the tail (it started over): check where Redis stands
            self.from_tail, self.check_gap = False, True
        if not self.check_gap:
            entries = read_entries(self.hub.reader, self.key, self.last)
            return entries, len(entries) == BATCH, None
        with self.hub.reader.pipeline(transaction=True) as pipe:
            pipe.xinfo_stream(self.key)
            pipe.xrange(self.key, min=xrange_after(self.last), max="+", count=BATCH)
            info, raw = pipe.execute(raise_on_error=False)
        if isinstance(raw, Exception):
            raise raw
        entries = to_entries(raw)
        gap = gap_frame(stream_info(info), self.last)
        self.check_gap = len(entries) == BATCH
        return entries, self.check_gap, gap

    def body(self, frames: Iterator[str]) -> EventStream:
        return EventStream(self.hub, self.subscription, frames, self.tail)

    def run(
        self,
        accept: Callable[[dict], bool] | None = None,
        ended: Callable[[Redis, EventId | None], bool] | None = None,
    ) -> Iterator[str]:
        """Frames: `retry`, then events as they come; stops after a terminal event or `ended`."""
        yield f"retry: {self.retry_ms}\n\n" + (self.first or "")
        now = time.monotonic()
        next_beat = now + self.heartbeat
        next_check = now  # the first quiet moment checks at once whether the stream is over
        backoff = 0.05
        while not self.hub.stopping:  # shutting down: the client resumes elsewhere, losing nothing
            self.subscription.clear()
            try:
                entries, more, gap = self.read()
                frames = [gap] if gap else []
                for event_id, event, frame in entries:
                    self.last = event_id
                    if accept is None or accept(event):
                        frames.append(frame)
                # Over at a terminal event only when it is the latest: a job retried after it
                # failed has a second run in the same timeline, which a replay must show too.
                over = ended is not None and bool(entries) and not more and is_terminal(entries[-1][1])
                if frames:
                    yield "".join(frames)  # one write for all the events of this read
                    next_beat = time.monotonic() + self.heartbeat
                if over:
                    return
                if more:
                    continue  # more to catch up on before waiting
                now = time.monotonic()
                if ended is not None and now >= next_check:
                    if ended(self.hub.reader, self.last):
                        return
                    next_check = now + self.poll
                backoff = 0.05
            except RedisError as exc:
                # Keep the client: heartbeats go on, and the read resumes where it stopped.
                log.warning("event stream %s cannot read Redis: %s", self.key, exc)
                yield ": waiting for redis\n\n"
                self.subscription.wait(backoff)
                backoff = min(backoff * 2, self.poll)
                continue
            now = time.monotonic()
            if now >= next_beat:
                yield ": keep-alive\n\n"
                next_beat = now + self.heartbeat
            wake_by = min(next_beat, now + self.poll, next_check if ended is not None else now + self.poll)
            self.subscription.wait(max(0.01, wake_by - now))


# -- routes -----------------------------------------------------------------------------


@bp.get("/jobs/<job_id:job_id>/events")
@spec(
    "jobEvents",
    summary="One job's events (Server-Sent Events): its timeline so far, then live, ending after its last event.",
    query=schemas.JobEventsQuery,
    headers=LAST_EVENT_ID,
    responses={200: None, 400: None, 401: None, 404: None, 422: None},
    events=schemas.Event,
    tag="events",
)
def job_events(job_id: str):
    """One job's events as SSE: its timeline from the start (or after Last-Event-ID), then live."""
    get_service().check_visible(job_id, caller())
    after = requested_event_id(parse_query(schemas.JobEventsQuery).last_event_id)
    hub = get_hub()
    key = keys.job_events(job_id)
    subscription = hub.subscribe(job_id)  # before any read: see the module docstring
    try:
        with hub.reader.pipeline(transaction=False) as pipe:
            pipe.exists(keys.job(job_id), key)
            pipe.xinfo_stream(keys.EVENTS_STREAM)
            exists, global_info = pipe.execute(raise_on_error=False)
        if isinstance(exists, Exception):
            raise exists
        if not exists:
            raise not_found(job_id)
        after, first = resume_point(after, stream_info(global_info))
    except BaseException:
        hub.unsubscribe(subscription)
        raise

    def ended(reader: Redis, last: EventId | None) -> bool:
        """Over when the last event was terminal and already sent, or the job is gone."""
        with reader.pipeline(transaction=False) as pipe:
            pipe.xrevrange(key, "+", "-", count=1)
            pipe.exists(keys.job(job_id))
            latest, job_exists = pipe.execute()
        if latest:
            latest_event = decode_entry(*latest[0])
            delivered = last is not None and parse_event_id(latest_event["id"]) <= last
            if not delivered:
                return False
            return is_terminal(latest_event) or not job_exists
        return not job_exists

    follow = Follow(hub, subscription, key, after, current_app.config, first)
    return sse_response(follow.body(follow.run(ended=ended)))


def resume_point(after: EventId | None, global_info: dict | None) -> tuple[EventId | None, str | None]:
    """Where a stream resumes, and a frame to send first.

    An id newer than any event means the streams were reset since the client saw it (Redis lost
    its data, or a client kept an id from another deployment): waiting for ids past it would skip
    every event until then, silently. Instead the client is told (`event: gap`) and gets the
    stream from its oldest kept event.
    """
    if after is None:
        return None, None
    newest = _id_of(global_info["last-generated-id"]) if global_info is not None else (0, 0)
    if after <= newest:
        return after, None
    first = (global_info or {}).get("first-entry")
    oldest = format_event_id(_id_of(first[0])) if first else None
    data = {"requested": format_event_id(after), "oldest": oldest}
    return None, f"event: gap\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@bp.get("/events")
@spec(
    "allEvents",
    summary="Every job's events (Server-Sent Events), live (or after Last-Event-ID), filtered by queue, "
    "job name and event; with API keys, only the caller's own jobs.",
    query=schemas.EventsQuery,
    headers=LAST_EVENT_ID,
    responses={200: None, 400: None, 401: None, 422: None},
    events=schemas.Event,
    tag="events",
)
def all_events():
    """Every job's events as SSE, optionally filtered by ?queue=, ?name= (job name), ?event=;
    with API keys, only the caller's own jobs (admins: all)."""
    service = get_service()
    owner = owner_filter(caller())
    query = parse_query(schemas.EventsQuery)
    queues = comma_list("queue", query.queue, list(service.queues), "queue")
    names = comma_list("name", query.name, sorted(service.catalog), "job name")
    kinds = comma_list("event", query.event, list(EVENT_NAMES), "event name")
    after = requested_event_id(query.last_event_id)
    hub = get_hub()
    subscription = hub.subscribe(None)  # before any read: see the module docstring
    follow = follow_stream(hub, subscription, keys.EVENTS_STREAM, after)

    def accept(event: dict) -> bool:
        return (
            (queues is None or event.get("queue") in queues)
            and (names is None or event.get("name") in names)
            and (kinds is None or event.get("event") in kinds)
            and (owner is None or event.get("owner") == owner)
        )

    filtered = None if queues is None and names is None and kinds is None and owner is None else accept
    return sse_response(follow.body(follow.run(accept=filtered)))


def follow_stream(hub: Hub, subscription: Subscription, stream: str, requested: EventId | None) -> Follow:
    """A Follow of one of the global streams (job, schedule or operator events) from the
    client's Last-Event-ID, or, without one, live from now: the newest id at subscription time
    (later ones wake us). `subscription` was made before this read (module docstring); it is
    released if the read fails."""
    try:
        info = stream_info(_xinfo(hub.reader, stream))
        after, first = resume_point(requested, info)
    except BaseException:
        hub.unsubscribe(subscription)
        raise
    if after is not None or first is not None:
        start = after
    else:
        start = _id_of(info["last-generated-id"]) if info else (0, 0)
    return Follow(hub, subscription, stream, start, current_app.config, first)


def _xinfo(reader: Redis, key: str):
    try:
        return reader.xinfo_stream(key)
    except ResponseError as exc:  # no such key
        return exc


@bp.get("/demo/events")
@spec(
    "demoEvents",
    summary="The /pubsub demo channel's messages (Server-Sent Events), live only: no ids, no replay.",
    responses={200: None, 401: None},
    events=schemas.DemoMessage,
    tag="events",
)
def demo_events():
    """The demo pub/sub channel as SSE: `data: {"channel", "data", "at"}` per message, live only."""
    hub = get_hub()
    subscription = hub.subscribe_demo()
    config = current_app.config
    return sse_response(EventStream(hub, subscription, _demo_frames(hub, subscription, config)))


def _demo_frames(hub: Hub, subscription: Subscription, config) -> Iterator[str]:
    heartbeat = float(config["HEARTBEAT_INTERVAL"])
    yield f"retry: {int(config['SSE_RETRY_MS'])}\n\n"
    next_beat = time.monotonic() + heartbeat
    while True:
        subscription.clear()
        for message in subscription.drain():
            yield f"data: {json.dumps(message, separators=(',', ':'))}\n\n"
            next_beat = time.monotonic() + heartbeat
        now = time.monotonic()
        if now >= next_beat:
            yield ": keep-alive\n\n"
            next_beat = now + heartbeat
        if hub.stopping:
            return
        subscription.wait(max(0.01, next_beat - now))
