"""The per-client submission rate limit: a fixed window counted in Redis.

`SUBMIT_RATE_LIMIT` is `N/second`, `N/minute`, `N/hour`, `N/day` or `N/<seconds>s`
(e.g. `100/second`, `500/10s`); empty switches the limit off. The counter is incremented in
the same Lua script that writes the job (lua/submit.lua), so the limit costs no extra round
trip; a refused request gets 429 with `Retry-After` = the seconds left in the window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(?:(second|minute|hour|day)s?|(\d+)\s*s)\s*$")


@dataclass(frozen=True)
class RateLimit:
    limit: int
    window: int  # seconds

    @classmethod
    def parse(cls, spec: str | None) -> RateLimit | None:
        if not spec or not spec.strip():
            return None
        match = _SPEC.match(spec.lower())
        if not match:
            raise ValueError(f"SUBMIT_RATE_LIMIT={spec!r}: use N/second, N/minute, N/hour, N/day or N/<seconds>s")
        limit = int(match.group(1))
        window = _UNITS[match.group(2)] if match.group(2) else int(match.group(3))
        if limit < 1 or window < 1:
            raise ValueError(f"SUBMIT_RATE_LIMIT={spec!r}: the count and the window must be at least 1")
        return cls(limit, window)

    def describe(self) -> str:
        return f"{self.limit} per {self.window} s"
