"""A job's states, as RQ names them, and the groups the service acts on."""

from __future__ import annotations

# Every status a client can see (RQ's `ready_to_enqueue` shows as `deferred`).
STATUSES = ("queued", "started", "deferred", "scheduled", "finished", "failed", "stopped", "canceled")
# A job in one of these will not run again by itself; its timeline ends with such an event.
TERMINAL = frozenset({"finished", "failed", "stopped", "canceled"})
# Waiting jobs: cancel takes them out of their queue or registry.
CANCELABLE = frozenset({"queued", "scheduled", "deferred", "ready_to_enqueue"})
# Ended without success: retry requeues them under the same id.
RETRYABLE = frozenset({"failed", "stopped", "canceled"})
