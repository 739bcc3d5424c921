"""The basic job types: arithmetic, a long-running job with progress, a failing job."""

from __future__ import annotations

import time
from typing import Annotated

from annotated_types import Ge, Le

from jobs.progress import report_progress


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def sleep(seconds: Annotated[float, Ge(0), Le(3600)] = 5.0) -> dict:
    """Sleep for a number of seconds (0 to 3600), reporting progress as it goes."""
    steps = max(1, min(100, int(seconds / 0.1)))
    started = time.monotonic()
    for step in range(1, steps + 1):
        deadline = started + seconds * step / steps
        time.sleep(max(0.0, deadline - time.monotonic()))
        report_progress(step / steps, f"slept {seconds * step / steps:.1f} of {seconds:g} s")
    return {"slept": seconds}


def fail(message: str = "this job fails on purpose") -> None:
    """Raise an error with the given message, to show how failures look."""
    raise RuntimeError(message)


# A deliberate failure should fail once, crisply: no retry (see RELIABILITY.md, retries).
fail.retries = 0
