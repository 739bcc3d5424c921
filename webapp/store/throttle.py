"""Failed credentials per client address and minute: a counter per (minute, address) in Redis.

Shared by every web process, so a guesser spread over processes (or reconnecting to another) is
counted once. A clock minute is the window: cheap (one INCR, one EXPIRE on the first failure),
and a blocked client learns exactly when it may try again.
"""

from __future__ import annotations

import time

from redis import Redis

from webapp.store import keys

WINDOW = 60  # seconds


class FailureThrottle:
    def __init__(self, connection: Redis, limit: int):
        self.connection = connection
        self.limit = limit

    def _key(self, address: str, now: float) -> str:
        return f"{keys.AUTH_FAILURES_PREFIX}{int(now // WINDOW)}:{address}"

    def blocked_for(self, address: str) -> int | None:
        """Seconds until `address` may present credentials again; None when it may now."""
        if self.limit <= 0:
            return None
        now = time.time()
        failures = self.connection.get(self._key(address, now))
        if failures is None or int(failures) < self.limit:
            return None
        return max(1, int(WINDOW - now % WINDOW + 0.999))

    def failed(self, address: str) -> None:
        """Count one refused credential from `address`."""
        if self.limit <= 0:
            return
        key = self._key(address, time.time())
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2 * WINDOW, nx=True)
            pipe.execute()
