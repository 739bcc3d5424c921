"""The overview charts' data: jobs finished and failed per minute, queue depth and wait, workers.

Read from the per-minute history in Redis (webapp/store/stats.py), so every web process
answers the same and a restart loses nothing. A request also takes the gauges' sample when no
`worker.py` has this interval (the same one-per-interval claim), so the charts move without workers.
"""

from __future__ import annotations

from flask import Blueprint, current_app

from webapp.store import stats
from webapp.web import schemas
from webapp.web.extensions import get_redis, get_service
from webapp.web.openapi import parse_query, respond, spec

bp = Blueprint("stats", __name__, url_prefix="/api")


@bp.get("/stats")
@spec(
    "getStats",
    summary="Per-minute history for the overview charts (last hour, or last day by 10 minutes), and the gauges now.",
    query=schemas.StatsQuery,
    responses={200: schemas.StatsView, 422: None},
    tag="ops",
)
def get_stats():
    """Jobs finished and failed, queue depth and oldest wait per queue, workers alive, over a window."""
    query = parse_query(schemas.StatsQuery)
    connection = get_redis()
    queues = list(get_service().queues)
    interval = float(current_app.config["STATS_SAMPLE_INTERVAL"])
    stats.sample_if_due(connection, queues, interval)
    view = stats.series(connection, queues, query.window)
    view.update(sample_interval=interval, queues=queues, now=stats.read_gauges(connection, queues))
    return respond(schemas.StatsView, view)
