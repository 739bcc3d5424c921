"""The app's one Redis client, made from config and kept in `app.extensions`."""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def _sentinel_address(entry: str) -> tuple[str, int]:
    host, _, port = entry.strip().rpartition(":")
    return (host or "127.0.0.1", int(port or 26379))


def make_sentinel_client(config: dict, *, socket_timeout: float | None = None) -> Redis:
    """A client for the master the sentinels name, following it across failovers.

    REDIS_URL still gives the database number, password and username of the data nodes;
    its host and port are ignored (the sentinels say where the master is).
    """
    from urllib.parse import unquote, urlparse

    from redis.sentinel import Sentinel

    url = urlparse(config["REDIS_URL"])
    timeout = config["REDIS_SOCKET_TIMEOUT"] if socket_timeout is None else socket_timeout
    sentinel = Sentinel(
        [_sentinel_address(entry) for entry in config["REDIS_SENTINEL_HOSTS"]],
        sentinel_kwargs={
            "socket_connect_timeout": config["REDIS_CONNECT_TIMEOUT"],
            "socket_timeout": config["REDIS_CONNECT_TIMEOUT"],
            "password": config.get("REDIS_SENTINEL_PASSWORD"),
        },
    )
    return sentinel.master_for(
        config["REDIS_SENTINEL_MASTER"],
        db=int((url.path or "/0").lstrip("/") or 0),
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        socket_connect_timeout=config["REDIS_CONNECT_TIMEOUT"],
        socket_timeout=timeout,
        max_connections=config["REDIS_MAX_CONNECTIONS"],
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
    )


def dashboard_url(config: dict) -> str:
    """The URL rq-dashboard connects with: REDIS_URL, or its `redis+sentinel://` form."""
    if not config.get("REDIS_SENTINEL_HOSTS"):
        return config["REDIS_URL"]
    from urllib.parse import urlparse

    database = (urlparse(config["REDIS_URL"]).path or "/0").lstrip("/") or "0"
    hosts = ",".join(entry.strip() for entry in config["REDIS_SENTINEL_HOSTS"])
    return f"redis+sentinel://{hosts}/{config['REDIS_SENTINEL_MASTER']}/{database}"


def make_client(config: dict, *, socket_timeout: float | None = None) -> Redis:
    """A client with explicit timeouts, so an unreachable Redis fails fast instead of hanging.

    With REDIS_SENTINEL_HOSTS set, a Sentinel-managed client for REDIS_SENTINEL_MASTER instead.
    """
    if config.get("REDIS_SENTINEL_HOSTS"):
        return make_sentinel_client(config, socket_timeout=socket_timeout)
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
