"""Job functions and the allow-list of those the HTTP API may enqueue.

Only the names in `ALLOWED` can be submitted over HTTP. Each function is a plain,
typed, importable callable: its signature and type hints are what submissions are
validated against, and its docstring's first line is its summary in the catalog.
"""

from __future__ import annotations

from collections.abc import Callable

from jobs.basic import add, fail, sleep
from jobs.demo import task_get

ALLOWED: dict[str, Callable] = {
    "add": add,
    "sleep": sleep,
    "fail": fail,
    "task_get": task_get,
}

# Per-type default options, shown by GET /api/functions; a submission may still override them
# within the server's maxima. Keys: queue, timeout, result_ttl, ttl, failure_ttl, retry, webhook.
# A retry may be fixed ({"max": 3, "intervals": [5, 30]}) or a backoff drawn per job
# ({"max": 6, "backoff": {"base": 5, "factor": 2, "max_delay": 600, "jitter": "full"}}).
DEFAULT_OPTIONS: dict[str, dict] = {
    "sleep": {"timeout": 3660},  # sleep accepts up to 3600 s: the default 180 s would cut it short
}

# Periodic schedules declared in code: name -> the body of POST /api/schedules without its name
# (README, "Periodic jobs"). `worker.py` creates or updates them at start-up, keeping their
# runtime state (paused, history, next run unless the timing changed), and deletes the ones
# removed from here. Optional "owner": the API key name whose jobs the runs are. For example:
#   "nightly-cleanup": {"job": {"name": "add", "args": [1, 2]}, "cron": "0 2 * * *", "timezone": "Europe/Paris"},
#   "heartbeat": {"job": {"name": "sleep", "args": [0], "queue": "low"}, "interval": 60, "no_overlap": True},
SCHEDULES: dict[str, dict] = {}
