"""Failed credentials per client address and minute: a counter per (minute, address) in Redis.

Counted in Redis, shared by every web process, so a guesser spread over processes (or
reconnecting to another) is counted once. A clock minute is the window: cheap (one INCR, one
EXPIRE on the first failure), and a blocked client learns exactly when it may try again.
"""

from __future__ import annotations

import time

from redis import Redis

from webapp.store import keys

WINDOW = 60  # seconds


class FailureThrottle:
    """Counts refusals in Redis (shared by every web process); which addresses are held back is
    kept in this process, so a request that presents credentials costs no Redis call. A process
    learns that an address is over the limit from its own count (INCR's answer): past the limit,
    each other web process lets at most one more refusal from it through before it knows too."""

    MAX_BLOCKED = 10000  # addresses held back at once in one process (expired ones are dropped first)

    def __init__(self, connection: Redis, limit: int):
        self.connection = connection
        self.limit = limit
        self._blocked: dict[str, float] = {}  # address -> when its window ends (Unix seconds)

    def _key(self, address: str, now: float) -> str:
        return f"{keys.AUTH_FAILURES_PREFIX}{int(now // WINDOW)}:{address}"

    def blocked_for(self, address: str) -> int | None:
        """Seconds until `address` may present credentials again; None when it may now."""
        until = self._blocked.get(address)
        if until is None:
            return None
        left = until - time.time()
        if left <= 0:
            self._blocked.pop(address, None)
            return None
        return max(1, int(left + 0.999))

    def failed(self, address: str) -> None:
        """Count one refused credential from `address`; past the limit, hold it back until the
        window ends."""
        if self.limit <= 0:
            return
        now = time.time()
        key = self._key(address, now)
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2 * WINDOW, nx=True)
            failures, _ = pipe.execute()
        if failures >= self.limit:
            if len(self._blocked) >= self.MAX_BLOCKED:
                self._blocked = {held: until for held, until in self._blocked.items() if until > now}
            self._blocked[address] = (now // WINDOW + 1) * WINDOW
