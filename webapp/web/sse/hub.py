"""One Redis subscription per web process, fanned out to that process's event streams.

Every SSE client of a web process registers a `Subscription` here instead of opening its
own Redis pub/sub connection. A single background thread (a greenlet under gevent, where
`threading` is monkey-patched) holds the process's one subscription to the job events, schedule events, operator events
(queue pauses, bulk progress) and demo channels and, for each message, wakes the subscriptions it concerns.

A job-event wake-up carries no data: the Redis streams are the source of truth, and a woken
client reads its stream after the last id it delivered. So a lost notification (Redis
restarting, the subscription being re-made) costs only latency: whenever the subscription is
(re)confirmed, every client is woken to re-read, and clients also re-read periodically.

Live clients of the same stream share its reads through the hub's `StreamTail` of that
stream (webapp/web/sse/tails.py: one XRANGE per published event per stream and process).
Clients further behind (a replay, a resume) read Redis themselves, through a small pool of
connections owned by the hub: a burst of clients waits for one of a few connections instead
of opening one each.

Both the subscription and the readers come from the app's Redis client factory
(webapp/infra/redis.py), so they follow a Sentinel failover like every other connection.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import weakref
from collections import deque

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError

from webapp.infra.clock import now_iso
from webapp.infra.redis import RedisFactory
from webapp.store import keys
from webapp.web.sse.tails import StreamTail

log = logging.getLogger("webapp.hub")

DEMO_BACKLOG = 256  # demo messages kept per slow client before the oldest are dropped
KEEPALIVE_OPTIONS = {
    option: value
    for option, value in (("TCP_KEEPIDLE", 15), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, option)
}
KEEPALIVE_OPTIONS = {getattr(socket, option): value for option, value in KEEPALIVE_OPTIONS.items()}


class Subscription:
    """One SSE client's wake-up: an event set on news, plus demo messages if it wants them."""

    __slots__ = ("job_id", "schedules", "operator", "wakeup", "messages", "__weakref__")

    def __init__(self, job_id: str | None = None, demo: bool = False, schedules: bool = False, operator: bool = False):
        self.job_id = job_id
        self.schedules = schedules  # woken by schedule events instead of job events
        self.operator = operator  # woken by operator events (queue pauses, bulk progress) instead
        self.wakeup = threading.Event()
        self.messages: deque | None = deque(maxlen=DEMO_BACKLOG) if demo else None

    def wait(self, timeout: float) -> bool:
        """Block until woken or `timeout` seconds pass; True when woken."""
        return self.wakeup.wait(timeout)

    def clear(self) -> None:
        """Call before reading the stream: a wake-up arriving during the read is kept."""
        self.wakeup.clear()

    def drain(self) -> list[dict]:
        """The demo messages received since the last call."""
        taken = []
        while self.messages:
            taken.append(self.messages.popleft())
        return taken


_HUBS: weakref.WeakSet[Hub] = weakref.WeakSet()


def end_all_streams() -> None:
    """Ask every open event stream of this process to end now (the web process is stopping).

    Clients reconnect (EventSource does so by itself) to a live process with their
    Last-Event-ID and lose nothing; the process need not wait out its graceful timeout.
    """
    for hub in list(_HUBS):
        hub.stopping = True
        hub._wake(hub._all_job_subscriptions() + list(hub._demo))


class Hub:
    """The per-process fan-out: one pub/sub connection, many subscriptions."""

    def __init__(self, config, factory: RedisFactory):
        self.factory = factory
        self.events_channel = keys.events_channel(config)
        self.schedules_channel = keys.schedule_events_channel(config)
        self.operator_channel = keys.queue_events_channel(config)
        self.demo_channel = config["DEMO_CHANNEL"]
        self.read_connections = config["SSE_REDIS_CONNECTIONS"]
        self._lock = threading.Lock()
        self._by_job: dict[str, set[Subscription]] = {}
        self._all_jobs: set[Subscription] = set()
        self._demo: set[Subscription] = set()
        self._schedules: set[Subscription] = set()
        self._operator: set[Subscription] = set()
        self._thread: threading.Thread | None = None
        self._owner_pid: int | None = None
        self._reader: Redis | None = None
        self._reader_pid: int | None = None
        self._tails: dict[str, StreamTail] = {}
        self.publications = 0  # notifications received (and resubscriptions): see StreamTail
        self.connected = threading.Event()
        self._closed = threading.Event()
        self.stopping = False  # set by end_all_streams(): streams end at their next wake-up
        _HUBS.add(self)
        self.subscriptions_made = 0  # times the subscription was confirmed (1 + reconnects)

    # -- clients -----------------------------------------------------------------------

    def subscribe(self, job_id: str | None = None) -> Subscription:
        """Register for job-event wake-ups (one job, or all jobs when `job_id` is None).

        Call it BEFORE reading the stream: any event the read misses is published after
        this registration, so it wakes the caller.
        """
        subscription = Subscription(job_id)
        with self._lock:
            if job_id is None:
                self._all_jobs.add(subscription)
            else:
                self._by_job.setdefault(job_id, set()).add(subscription)
        self._ensure_running()
        return subscription

    def subscribe_schedules(self) -> Subscription:
        """Register for schedule-event wake-ups (call it BEFORE reading the stream, as `subscribe`)."""
        subscription = Subscription(schedules=True)
        with self._lock:
            self._schedules.add(subscription)
        self._ensure_running()
        return subscription

    def subscribe_operator(self) -> Subscription:
        """Register for operator-event wake-ups (call it BEFORE reading the stream, as `subscribe`)."""
        subscription = Subscription(operator=True)
        with self._lock:
            self._operator.add(subscription)
        self._ensure_running()
        return subscription

    def subscribe_demo(self) -> Subscription:
        """Register for the demo channel's messages (at most once: none are replayed)."""
        subscription = Subscription(demo=True)
        with self._lock:
            self._demo.add(subscription)
        self._ensure_running()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription.messages is not None:
                self._demo.discard(subscription)
            elif subscription.schedules:
                self._schedules.discard(subscription)
            elif subscription.operator:
                self._operator.discard(subscription)
            elif subscription.job_id is None:
                self._all_jobs.discard(subscription)
            else:
                waiting = self._by_job.get(subscription.job_id)
                if waiting is not None:
                    waiting.discard(subscription)
                    if not waiting:
                        del self._by_job[subscription.job_id]

    def tail(self, key: str) -> StreamTail:
        """The shared tail of stream `key`; give it back with `release_tail`."""
        with self._lock:
            tail = self._tails.get(key)
            if tail is None:
                tail = self._tails[key] = StreamTail(key)
            tail.users += 1
            return tail

    def release_tail(self, tail: StreamTail) -> None:
        with self._lock:
            tail.users -= 1
            if tail.users <= 0 and self._tails.get(tail.key) is tail:
                del self._tails[tail.key]

    def client_count(self) -> int:
        with self._lock:
            return (
                len(self._all_jobs)
                + len(self._demo)
                + len(self._schedules)
                + len(self._operator)
                + sum(len(subs) for subs in self._by_job.values())
            )

    @property
    def reader(self) -> Redis:
        """The client event streams read with: a few pooled connections, waited for when busy."""
        if self._reader is None or self._reader_pid != os.getpid():
            # A client waits at most half a socket timeout for a free connection, then its read
            # at most one: under a frozen Redis (every pooled connection stuck in a read) it gets
            # its 503 within 1.5 timeouts (0.75 s by default), not behind the stuck reads.
            self._reader = self.factory.client(
                max_connections=self.read_connections,
                wait_for_connection=self.factory.socket_timeout / 2,
                name="jobsvc-sse-read",  # who is who in CLIENT LIST
            )
            self._reader_pid = os.getpid()
        return self._reader

    def close(self) -> None:
        """Stop listening (within a few seconds) and drop the read connections."""
        self._closed.set()
        if self._reader is not None:
            self._reader.close()
            self._reader.connection_pool.disconnect()

    # -- the listening thread ------------------------------------------------------------

    def _ensure_running(self) -> None:
        # A forked child inherits the object but not the thread: start its own.
        if self._thread is not None and self._thread.is_alive() and self._owner_pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._owner_pid == os.getpid():
                return
            if self._owner_pid != os.getpid():
                self.connected.clear()
            self._owner_pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="event-hub", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        backoff = 0.1
        while not self._closed.is_set():
            confirmed_before = self.subscriptions_made
            client = self.factory.client(
                socket_timeout=None,
                max_connections=2,
                # A half-open connection (a peer gone without a FIN) is noticed in about 30 s.
                keepalive=KEEPALIVE_OPTIONS,
                health_check_interval=15,
                retries=0,
                name="jobsvc-sse-hub",
            )
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(self.events_channel, self.demo_channel, self.schedules_channel, self.operator_channel)
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
            except (RedisError, OSError) as exc:
                if self.connected.is_set():
                    log.warning("event hub lost Redis (%s); reconnecting", exc)
                self.connected.clear()
            except Exception:  # a bug here must not silence every stream of the process
                log.exception("event hub failed; restarting it")
                self.connected.clear()
            finally:
                try:
                    pubsub.close()
                    client.close()
                except Exception:  # closing a broken connection may raise; it is gone anyway
                    pass
            # Whatever was published meanwhile is in the streams: clients re-read on reconnect.
            if self.subscriptions_made > confirmed_before:
                backoff = 0.1  # it had worked: retry soon; otherwise back off up to 5 s
            self._closed.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _dispatch(self, message: dict) -> None:
        kind = message["type"]
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        if kind == "subscribe":
            if channel == self.events_channel:
                # Confirmed (again): events published before now are in the streams, so
                # every job-event client re-reads once; from here on, wake-ups arrive.
                self.subscriptions_made += 1
                self.publications += 1
                self.connected.set()
                self._wake(self._all_job_subscriptions())
            return
        if kind != "message":
            return
        data = message["data"]
        data = data.decode() if isinstance(data, bytes) else data
        if channel == self.events_channel:
            try:
                job_id = json.loads(data).get("job_id")
            except (ValueError, AttributeError):
                return
            with self._lock:
                self.publications += 1
                targets = list(self._all_jobs)
                targets.extend(self._by_job.get(job_id, ()))
            self._wake(targets)
        elif channel == self.schedules_channel:
            with self._lock:
                self.publications += 1
                targets = list(self._schedules)
            self._wake(targets)
        elif channel == self.operator_channel:
            with self._lock:
                self.publications += 1
                targets = list(self._operator)
            self._wake(targets)
        elif channel == self.demo_channel:
            received = {
                "channel": channel,
                "data": data,
                "at": now_iso(),
            }
            with self._lock:
                targets = list(self._demo)
            for subscription in targets:
                subscription.messages.append(received)
            self._wake(targets)

    def _all_job_subscriptions(self) -> list[Subscription]:
        with self._lock:
            targets = list(self._all_jobs) + list(self._schedules) + list(self._operator)
            for waiting in self._by_job.values():
                targets.extend(waiting)
        return targets

    @staticmethod
    def _wake(targets) -> None:
        for subscription in targets:
            subscription.wakeup.set()


def init_app(app: Flask) -> None:
    app.extensions["jobsvc_hub"] = Hub(app.config, app.extensions["redis_factory"])


def get_hub() -> Hub:
    return current_app.extensions["jobsvc_hub"]
