"""`GET /api/schedule-events`: every schedule's events as Server-Sent Events.

Schedule events (`schedule.created`, `schedule.run`, `schedule.skipped`, ...) are not job
events: they live in a stream and a channel of their own (webapp/store/schedules.py), so the
job event streams and their consumers never see them. This stream follows the same rules as
`/api/events` (webapp/web/sse/streams.py): resumable with Last-Event-ID, live from now without
it, filtered by `?schedule=` and, with API keys, to the caller's own schedules.
"""

from __future__ import annotations

import re

from webapp.infra.errors import ValidationFailed
from webapp.service.access import owner_filter
from webapp.store import keys
from webapp.web import schemas
from webapp.web.auth import caller
from webapp.web.openapi import parse_query, spec
from webapp.web.sse.hub import get_hub
from webapp.web.sse.streams import (
    LAST_EVENT_ID,
    bp,
    follow_stream,
    requested_event_id,
    sse_response,
)


@bp.get("/schedule-events")
@spec(
    "scheduleEvents",
    summary="Every schedule's events (Server-Sent Events), live (or after Last-Event-ID), filtered by schedule; "
    "with API keys, only the caller's own schedules.",
    query=schemas.ScheduleEventsQuery,
    headers=LAST_EVENT_ID,
    responses={200: None, 400: None, 401: None, 422: None},
    events=schemas.ScheduleEvent,
    tag="events",
)
def schedule_events():
    """Schedule events as SSE, optionally only those of ?schedule=a,b; with API keys, only the
    caller's own schedules (admins: all)."""
    owner = owner_filter(caller())
    query = parse_query(schemas.ScheduleEventsQuery)
    names = None
    if query.schedule:
        if not re.fullmatch(schemas.SCHEDULE_LIST_PATTERN, query.schedule):
            raise ValidationFailed("?schedule=: schedule names separated by commas, without spaces")
        names = frozenset(query.schedule.split(","))
    after = requested_event_id(query.last_event_id)
    hub = get_hub()
    subscription = hub.subscribe_schedules()  # before any read: see streams.py
    follow = follow_stream(hub, subscription, keys.SCHEDULE_EVENTS_STREAM, after)

    def accept(event: dict) -> bool:
        return (names is None or event.get("schedule") in names) and (owner is None or event.get("owner") == owner)

    return sse_response(follow.body(follow.run(accept=None if names is None and owner is None else accept)))
