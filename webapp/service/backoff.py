"""Retry delays: fixed intervals, or exponential backoff with jitter drawn per job.

RQ retries a job after the delays in its `retry_intervals`, one per retry. For a backoff the
delays are drawn here, once per job when it is planned (and again when it is retried through
the API): delay i is min(max_delay, base * factor**i), then jittered. Each job draws its own,
which is what spreads a herd of jobs that failed together over time.

- `full`: uniform in [0, d] (spreads the most; the default)
- `equal`: d/2 plus uniform in [0, d/2] (at least half the delay)
- `none`: d

Delays are rounded down to the millisecond.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

JITTERS = ("full", "equal", "none")
DEFAULT_BACKOFF = {"base": 1.0, "factor": 2.0, "max_delay": None, "jitter": "full"}
MAX_BACKOFF_FACTOR = 10.0


def _milliseconds_down(seconds: float) -> float:
    return math.floor(seconds * 1000) / 1000


def backoff_delays(retries: int, backoff: Mapping[str, Any], rng: random.Random | None = None) -> list[float]:
    """One delay (seconds) per retry for `backoff` ({base, factor, max_delay, jitter})."""
    rng = rng or random
    cap = float(backoff["max_delay"])
    delay = min(float(backoff["base"]), cap)
    delays = []
    for _ in range(retries):
        if backoff["jitter"] == "full":
            drawn = rng.uniform(0, delay)
        elif backoff["jitter"] == "equal":
            drawn = delay / 2 + rng.uniform(0, delay / 2)
        else:
            drawn = delay
        delays.append(_milliseconds_down(min(drawn, delay)))
        delay = min(delay * float(backoff["factor"]), cap)  # capped each step: never overflows
    return delays


def fixed_delays(retries: int, intervals: Sequence[float]) -> list[float]:
    """One delay per retry from fixed intervals: in turn, the last one repeating (none: 0).

    RQ itself repeats the *first* interval when there are fewer than retries, and skips the
    first ones when there are more; a list of exactly one delay per retry means what it says.
    """
    if not intervals:
        return [0] * retries
    return [intervals[min(i, len(intervals) - 1)] for i in range(retries)]
