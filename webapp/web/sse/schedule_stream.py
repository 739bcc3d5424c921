"""`GET /api/schedule-events`: every schedule's events as Server-Sent Events.

Schedule events (`schedule.created`, `schedule.run`, `schedule.skipped`, ...) are not job
events: they live in a stream and a channel of their own (webapp/store/schedules.py), so the
job event streams and their consumers never see them. This stream follows the same rules as
`/api/events` (webapp/web/sse/streams.py): resumable with Last-Event-ID, live from now without
it, filtered by `?schedule=` and, with API keys, to the caller's own schedules.
"""

from __future__ import annotations

from flask import current_app, request

from webapp.infra.errors import ValidationFailed
from webapp.service.access import owner_filter
from webapp.store import keys
from webapp.web.auth import caller
from webapp.web.sse.hub import get_hub
from webapp.web.sse.streams import (
    Follow,
    _id_of,
    _xinfo,
    bp,
    check_not_future,
    requested_event_id,
    sse_response,
    stream_info,
)


@bp.get("/schedule-events")
def schedule_events():
    """Schedule events as SSE, optionally only those of ?schedule=a,b; with API keys, only the
    caller's own schedules (admins: all)."""
    owner = owner_filter(caller())
    raw = request.args.get("schedule", "")
    names = frozenset(part.strip() for part in raw.split(",") if part.strip()) or None
    if names is not None and any(len(name) > 100 for name in names):
        raise ValidationFailed("schedule: names are at most 100 characters")
    after = requested_event_id()
    hub = get_hub()
    subscription = hub.subscribe_schedules()  # before any read: see streams.py
    try:
        info = stream_info(_xinfo(hub.reader, keys.SCHEDULE_EVENTS_STREAM))
        check_not_future(after, info)
    except BaseException:
        hub.unsubscribe(subscription)
        raise
    start = after if after is not None else (_id_of(info["last-generated-id"]) if info else (0, 0))

    def accept(event: dict) -> bool:
        return (names is None or event.get("schedule") in names) and (owner is None or event.get("owner") == owner)

    follow = Follow(hub, subscription, keys.SCHEDULE_EVENTS_STREAM, start, current_app.config)
    return sse_response(follow.body(follow.run(accept=None if names is None and owner is None else accept)))
