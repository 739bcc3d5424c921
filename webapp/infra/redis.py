"""The one Redis client factory: every connection a process opens is made here, from the settings.

Web requests, the SSE hub's subscription and stream readers, the workers, the scheduler, the
reaper, the dashboard and the `flask` commands all ask `RedisFactory` for their clients, so
each of them gets the same timeouts, retry policy, client name and Sentinel support. A test
walks the code base and fails on any other place that opens a connection
(tests/test_architecture.py).

Timeouts (REDIS_CONNECT_TIMEOUT, REDIS_SOCKET_TIMEOUT, 0.5 s each by default) bound how long a
request waits for a Redis that hangs: a frozen server (process stopped, TCP still accepting)
costs a request one socket timeout, then a JSON 503. Only a *connection* error is retried,
once, on a fresh connection: that covers a connection the server closed while idle or a
restart. A *timeout* is never retried: the command may have run, and repeating a write could
apply it twice (the submit script is also idempotent by job id, see store/lua/submit.lua).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlparse

from redis import BlockingConnectionPool, Redis
from redis._parsers.base import BaseParser
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.exceptions import BusyLoadingError, OutOfMemoryError, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

DEFAULT = object()  # "the configured socket timeout"


class WritesRefusedError(ResponseError):
    """`MISCONF`: Redis refuses every write (and PING) until it can save to disk again: its last
    snapshot or append-only write failed (a full disk, a data directory gone read-only), under
    `stop-writes-on-bgsave-error yes`, its default, or with the append-only file on."""


# redis-py turns OOM, READONLY and LOADING replies into exception classes but not MISCONF, which
# would reach callers as a bare ResponseError, a defect's class. Registered with its parsers (all
# of them, hiredis's included, read error replies through this table) so that it is caught below.
BaseParser.EXCEPTION_CLASSES.setdefault("MISCONF", WritesRefusedError)

# Redis cannot take a command now, but will: it does not answer (down, restarting, frozen past
# the socket timeout), is still loading its data, is a replica after a failover, is full
# (maxmemory reached under `noeviction`, the policy RQ needs: it refuses writes that would add
# data, and answers reads), or cannot save to disk (it refuses every write). The web answers
# these with a 503 (webapp/web/errors.py); a worker waits and retries, keeping what it holds
# (webapp/worker). Any other Redis error is a defect.
REDIS_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    OutOfMemoryError,
    WritesRefusedError,
)


def unavailable_reason(exc: Exception) -> str:
    """Why Redis refused, for a log line; where the operator must act, what to do."""
    if isinstance(exc, OutOfMemoryError):
        return (
            "Redis is full (its maxmemory is reached) and refuses writes: raise maxmemory or free "
            "memory (results and events expire by their TTLs)"
        )
    if isinstance(exc, WritesRefusedError):
        return (
            "Redis cannot save to disk (MISCONF) and refuses every write: free disk space or fix its "
            "data directory (Redis's own log says why)"
        )
    return f"Redis unavailable ({exc})"


def _retry_connection_errors_once() -> Retry:
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _sentinel_address(entry: str) -> tuple[str, int]:
    host, _, port = entry.strip().rpartition(":")
    return (host or "127.0.0.1", int(port or 26379))


class BlockingSentinelPool(SentinelConnectionPool):
    """A Sentinel pool that waits (up to `timeout`) for a free connection instead of failing.

    redis-py offers waiting only for plain pools (BlockingConnectionPool); SSE readers need it
    with Sentinel too, so a burst of clients shares a few connections.
    """

    def __init__(self, service_name, sentinel_manager, *, max_connections: int, timeout: float, **kwargs):
        super().__init__(service_name, sentinel_manager, max_connections=max_connections, **kwargs)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._wait = timeout
        self._handed_out: set[int] = set()  # connections holding a slot

    def get_connection(self, *args, **kwargs):
        if not self._slots.acquire(timeout=self._wait):
            raise RedisConnectionError("no Redis connection free for this event stream; retry shortly")
        try:
            connection = super().get_connection(*args, **kwargs)
        except BaseException:
            # A connection that failed to connect was already given back through `release`,
            # which frees a slot only for connections handed out: this slot is freed here.
            self._slots.release()
            raise
        self._handed_out.add(id(connection))
        return connection

    def release(self, connection) -> None:
        try:
            super().release(connection)
        finally:
            if id(connection) in self._handed_out:
                self._handed_out.discard(id(connection))
                self._slots.release()


class RedisFactory:
    """Makes every Redis client and connection of a process from one settings mapping."""

    def __init__(self, config: Mapping[str, Any]):
        self.url = config["REDIS_URL"]
        self.connect_timeout = float(config["REDIS_CONNECT_TIMEOUT"])
        self.socket_timeout = float(config["REDIS_SOCKET_TIMEOUT"])
        self.max_connections = int(config["REDIS_MAX_CONNECTIONS"])
        self.sentinel_hosts = [entry for entry in config.get("REDIS_SENTINEL_HOSTS") or [] if entry.strip()]
        self.sentinel_master = config.get("REDIS_SENTINEL_MASTER", "mymaster")
        self.sentinel_password = config.get("REDIS_SENTINEL_PASSWORD")
        self._sentinel: Sentinel | None = None
        self._sentinel_pid: int | None = None

    # -- clients ----------------------------------------------------------------------

    def client(
        self,
        *,
        name: str,
        socket_timeout: float | None | object = DEFAULT,
        max_connections: int | None = None,
        wait_for_connection: float | None = None,
        keepalive: dict[int, int] | None = None,
        health_check_interval: int = 30,
        retries: int = 1,
    ) -> Redis:
        """A client with the configured timeouts (or `socket_timeout`; None = block).

        `wait_for_connection`: when set, a full pool makes callers wait that long for a free
        connection (instead of failing at once). `name` is the CLIENT LIST name, suffixed with
        the process id. `keepalive`: TCP keep-alive options, for connections that sit idle.
        """
        timeout = self.socket_timeout if socket_timeout is DEFAULT else socket_timeout
        options: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": timeout,
            "max_connections": max_connections or self.max_connections,
            "health_check_interval": health_check_interval,
            "retry": _retry_connection_errors_once() if retries else Retry(NoBackoff(), 0),
        }
        options["client_name"] = f"{name}:{os.getpid()}"
        if keepalive:
            options["socket_keepalive"] = True
            options["socket_keepalive_options"] = keepalive
        if self.sentinel_hosts:
            return self._sentinel_client(options, wait_for_connection)
        if wait_for_connection is not None:
            pool = BlockingConnectionPool.from_url(self.url, timeout=wait_for_connection, **options)
            return Redis(connection_pool=pool)
        return Redis.from_url(self.url, **options)

    def _sentinel_client(self, options: dict[str, Any], wait_for_connection: float | None) -> Redis:
        """A client of the master the sentinels name, following it across failovers.

        REDIS_URL still gives the database number, user name and password of the data nodes;
        its host and port are ignored (the sentinels say where the master is).
        """
        url = urlparse(self.url)
        kwargs = dict(options)
        kwargs.update(
            db=int((url.path or "/0").lstrip("/") or 0),
            username=unquote(url.username) if url.username else None,
            password=unquote(url.password) if url.password else None,
        )
        if wait_for_connection is not None:
            kwargs["connection_pool_class"] = BlockingSentinelPool
            kwargs["timeout"] = wait_for_connection
        return self.sentinel().master_for(self.sentinel_master, **kwargs)

    def sentinel(self) -> Sentinel:
        """The sentinels, one manager per process (a forked child makes its own)."""
        if self._sentinel is None or self._sentinel_pid != os.getpid():
            self._sentinel = Sentinel(
                [_sentinel_address(entry) for entry in self.sentinel_hosts],
                sentinel_kwargs={
                    "socket_connect_timeout": self.connect_timeout,
                    "socket_timeout": self.connect_timeout,
                    "password": self.sentinel_password,
                },
            )
            self._sentinel_pid = os.getpid()
        return self._sentinel

    @staticmethod
    def dedicated_connection(client: Redis) -> Connection:
        """One connection outside `client`'s pool, made as the pool makes its own (same
        timeouts, same Sentinel master lookup): for a thread that sends one command per job
        and should not pay a pool checkout each time (the fast worker's STEP)."""
        pool = client.connection_pool
        return pool.connection_class(**pool.connection_kwargs)

    def dashboard_url(self) -> str:
        """The URL rq-dashboard is configured with (it is then handed the app's client)."""
        if not self.sentinel_hosts:
            return self.url
        database = (urlparse(self.url).path or "/0").lstrip("/") or "0"
        hosts = ",".join(entry.strip() for entry in self.sentinel_hosts)
        return f"redis+sentinel://{hosts}/{self.sentinel_master}/{database}"

    def describe(self) -> str:
        """Where this factory connects, for log lines and messages."""
        if self.sentinel_hosts:
            return f"master {self.sentinel_master!r} of sentinels {', '.join(self.sentinel_hosts)}"
        return self.url


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis answers PING at `url` (the launcher's check before it starts one)."""
    factory = RedisFactory(
        {
            "REDIS_URL": url,
            "REDIS_CONNECT_TIMEOUT": timeout,
            "REDIS_SOCKET_TIMEOUT": timeout,
            "REDIS_MAX_CONNECTIONS": 1,
        }
    )
    client = factory.client(name="jobsvc-probe", retries=0)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()
