"""The delivery log of a job's webhook, for a caller: the job's ownership rule applies as is."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from webapp.infra.errors import Conflict, NotFound
from webapp.service.access import Caller
from webapp.store.webhooks import Outbox

# A delivery's id is its event's id: `<ms>-<seq>`.
DELIVERY_ID_PATTERN = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


class DeliveryLog:
    """Reads and redelivers a job's webhook deliveries; NotFound for a job the caller may not see."""

    def __init__(self, outbox: Outbox, check_visible: Callable[[str, Caller], None]):
        self.outbox = outbox
        self.check_visible = check_visible

    def of_job(self, job_id: str, caller: Caller) -> list[dict[str, Any]]:
        self.check_visible(job_id, caller)
        return self.outbox.of_job(job_id)

    def redeliver(self, job_id: str, delivery_id: str, caller: Caller) -> dict[str, Any]:
        """Deliver an ended delivery again, with a new retry window; 409 while it is under way."""
        self.check_visible(job_id, caller)
        if not DELIVERY_ID_PATTERN.fullmatch(delivery_id):
            raise NotFound(f"no delivery {delivery_id!r}: delivery ids look like 1795482400620-0")
        outcome = self.outbox.redeliver(job_id, delivery_id)
        if outcome == "missing":
            raise NotFound(f"job {job_id} has no delivery {delivery_id!r} (it never existed or has expired)")
        if outcome != "ok":
            raise Conflict(f"delivery {delivery_id} is {outcome}: only a delivered or failed delivery is sent again")
        return self.outbox.get(job_id, delivery_id) or {}
