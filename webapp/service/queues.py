"""Queues as operators see and steer them: depth, wait, counts, and pause/resume.

Pausing is an admin operation (the web's gate checks the role first; this keeps the rule for
every other way in). An unknown queue name is a 404, as an unknown job id or schedule is.
"""

from __future__ import annotations

from typing import Any

from webapp.infra.errors import Forbidden, NotFound
from webapp.service.access import ADMIN, Caller
from webapp.service.jobservice import JobService
from webapp.store import overview
from webapp.store.pauses import QueuePauses


class QueueService:
    """Lists the configured queues and pauses or resumes one of them."""

    def __init__(self, jobs: JobService):
        self.connection = jobs.connection
        self.names = list(jobs.queues)
        self.pauses = QueuePauses(jobs.connection, jobs.config)

    def list(self) -> list[dict[str, Any]]:
        """Every configured queue, in priority order, with counts, depth, oldest wait and pause state."""
        return overview.queue_counts(self.connection, self.names)

    def view(self, name: str) -> dict[str, Any]:
        self._known(name)
        return next(queue for queue in self.list() if queue["name"] == name)

    def set_paused(self, caller: Caller, name: str, paused: bool, by: str | None = None) -> tuple[bool, dict[str, Any]]:
        """Pause (or resume) queue `name`; (whether it changed, the queue's view). Idempotent.
        `by` names who did it when there is no caller (the command line's operator)."""
        if caller is not None and not caller.has(ADMIN):
            raise Forbidden(f"key {caller.name!r} ({caller.role}) cannot pause or resume queues: use an admin key")
        self._known(name)
        changed, _ = self.pauses.set(name, paused, caller.name if caller is not None else by)
        return changed, self.view(name)

    def _known(self, name: str) -> None:
        if name not in self.names:
            raise NotFound(f"no queue named {name!r}: the queues are {', '.join(self.names)}")
