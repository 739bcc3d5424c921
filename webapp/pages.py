"""The home page, the health check and the tutorial's two demos."""

from __future__ import annotations

import random

from flask import Blueprint, current_app, jsonify, redirect, render_template, url_for
from redis.exceptions import RedisError

from webapp.redis_client import get_redis
from webapp.service import get_service

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    service = get_service()
    return render_template("index.html", catalog=service.catalog.values(), queues=list(service.queues))


@bp.get("/healthz")
def healthz():
    """200 when Redis answers, 503 when it does not."""
    try:
        get_redis().ping()
    except RedisError as exc:
        response = jsonify({"status": "failing", "redis": "unreachable", "message": str(exc)})
        response.status_code = 503
        return response
    return jsonify({"status": "ok", "redis": "ok"})


@bp.get("/prodcons")
def prodcons():
    """Producer/consumer demo: enqueue a job carrying a random number 0-9."""
    get_service().submit("task_get", [random.randint(0, 9)])
    return redirect(url_for("pages.index"))


@bp.get("/pubsub")
def pubsub():
    """Publish/subscribe demo: publish a random number 0-9 on the demo channel."""
    get_redis().publish(current_app.config["DEMO_CHANNEL"], str(random.randint(0, 9)))
    return redirect(url_for("pages.index"))
