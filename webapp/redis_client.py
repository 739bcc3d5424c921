"""The app's one Redis client, made from config and kept in `app.extensions`."""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def make_client(config: dict, *, socket_timeout: float | None = None) -> Redis:
    """A client with explicit timeouts, so an unreachable Redis fails fast instead of hanging."""
    return Redis.from_url(
        config["REDIS_URL"],
        socket_connect_timeout=config["REDIS_CONNECT_TIMEOUT"],
        socket_timeout=config["REDIS_SOCKET_TIMEOUT"] if socket_timeout is None else socket_timeout,
        max_connections=config["REDIS_MAX_CONNECTIONS"],
        health_check_interval=30,
        # One quick reconnect covers a connection the server closed while idle; more
        # retries would only delay the 503 a client should get while Redis is down.
        retry=Retry(NoBackoff(), 1),
    )


def init_app(app: Flask) -> None:
    if "redis" in app.extensions:
        raise RuntimeError("redis_client.init_app() was called twice for this app")
    app.extensions["redis"] = make_client(app.config)


def get_redis() -> Redis:
    """The current app's Redis client."""
    return current_app.extensions["redis"]
