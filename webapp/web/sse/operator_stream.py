"""`GET /api/operator-events`: queue pauses and resumes and bulk actions' progress as Server-Sent Events.

Operator events are not job events: they live in a stream and a channel of their own
(webapp/store/opevents.py, webapp/store/pauses.py), so the job event streams and their
consumers never see them. This stream follows the same rules as `/api/schedule-events`:
resumable with Last-Event-ID, live from now without it. Admin and viewer keys (and the open
API) get every event; an owner key gets only the events of its own bulk calls (those whose
`owner` is its name), never a queue event nor another caller's bulk call.
"""

from __future__ import annotations

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


@bp.get("/operator-events")
@spec(
    "operatorEvents",
    summary="Operator events (Server-Sent Events): queue pauses and resumes, bulk actions' progress; live "
    "(or after Last-Event-ID); with an owner key, only its own bulk calls' events.",
    query=schemas.OperatorEventsQuery,
    headers=LAST_EVENT_ID,
    responses={200: None, 400: None, 401: None, 422: None},
    events=schemas.OperatorEvent,
    tag="events",
)
def operator_events():
    """Operator events as SSE; with an owner key, only the events of its own bulk calls."""
    owner = owner_filter(caller())
    query = parse_query(schemas.OperatorEventsQuery)
    after = requested_event_id(query.last_event_id)
    hub = get_hub()
    subscription = hub.subscribe_operator()  # before any read: see streams.py
    follow = follow_stream(hub, subscription, keys.QUEUE_EVENTS_STREAM, after)

    def accept(event: dict) -> bool:
        return event.get("owner") == owner

    return sse_response(follow.body(follow.run(accept=None if owner is None else accept)))
