"""Process helpers shared by the launcher and the worker supervisor."""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import time

from redis.exceptions import RedisError

from webapp.infra.redis import RedisFactory

log = logging.getLogger("webapp.infra.process")


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so no child outlives it."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def wait_for_redis(factory: RedisFactory) -> None:
    """Block until Redis answers, saying so every few seconds: a worker started before Redis
    (or during an outage) should wait, not crash the whole Procfile."""
    client = factory.client(name="jobsvc-wait")
    next_note = 0.0
    try:
        while True:
            try:
                client.ping()
                return
            except RedisError as exc:
                if time.monotonic() >= next_note:
                    log.warning("cannot reach Redis at %s (%s); retrying. Start Redis or fix REDIS_URL.",
                                factory.describe(), exc)  # fmt: skip
                    next_note = time.monotonic() + 5
                time.sleep(0.5)
    finally:
        client.close()
