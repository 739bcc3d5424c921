"""The producer/consumer demo's job: a worker picks up a number and logs it."""

from __future__ import annotations

import logging

log = logging.getLogger("jobs.demo")


def task_get(number: int) -> int:
    """Log the number a producer sent, like the tutorial's consumer, and return it."""
    log.info("Task get %d", number)
    return number
