"""Webhooks' outbox in Redis: deliveries recorded with their events, claimed under a lease.

A job's webhook (`{"url", "events"}` in its meta) is read by whoever writes one of its events:
when the webhook subscribes to the event, the event script also records a delivery (one hash,
its id the event's id) and puts it in the due set (lua/lib/webhooks.lua). Nothing else is
written, and jobs without a webhook pass an empty URL (or, in STEP's claim, none).

Due deliveries wait per target host (lib/webhooks.lua), so a delivery thread claims from each
host only what that host's share of its senders allows, and a slow host's backlog is never
read, claimed or handed back while it is busy (lua/webhook_claim.lua). A claim moves the
delivery `lease` seconds ahead and gives it a new token, so a delivery whose claimant dies
comes due again and is delivered by another thread, while the report of a claimant that lost
its claim is ignored (lua/webhook_done.lua). Deliveries are therefore at least once;
receivers deduplicate by delivery id.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis

from webapp.infra.clock import iso_from_timestamp
from webapp.store import keys, scripts

# The events a webhook may subscribe to, and those it gets when it names none: the job's end.
WEBHOOK_EVENTS = ("started", "retrying", "finished", "failed", "stopped", "canceled", "abandoned")
DEFAULT_EVENTS = ("finished", "failed", "stopped", "canceled")
STATES = ("pending", "delivering", "retrying", "delivered", "failed")
ENDED = ("delivered", "failed")


def target_for(webhook: Mapping[str, Any] | None, event: str) -> str:
    """The URL `event` is delivered to under the job's webhook, else '' (as lib/webhooks.lua)."""
    if not webhook:
        return ""
    url, events = webhook.get("url"), webhook.get("events")
    if isinstance(url, str) and isinstance(events, list) and event in events:
        return url
    return ""


_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")


def host_key(url: str) -> str:
    """The host part of a URL as the outbox keys it ("a.example.com", "[::1]"), as lib/webhooks.lua;
    without a trailing dot, which names the same host ("a.example.com." shares its senders)."""
    match = _AUTHORITY.match(url)
    authority = match.group(1) if match else ""
    authority = authority.rpartition("@")[2] if "@" in authority else authority
    if authority.startswith("["):
        host = authority[: authority.index("]") + 1] if "]" in authority else ""
    else:
        host = authority.split(":", 1)[0]
    return host.rstrip(".").lower()


def now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class Claimed:
    """A delivery a thread has claimed: what to send where, and the token to report with."""

    id: str
    token: str
    job_id: str
    event: str
    url: str
    payload: str  # the event as published (JSON, with its id)
    body: str | None  # the body of earlier attempts, sent again unchanged
    attempts: int
    since: int  # when the current retry window began (ms)


class Outbox:
    """The deliveries of one Redis, for the delivery threads and for the API's log."""

    def __init__(self, connection: Redis):
        self.connection = connection
        self._claim = scripts.script("webhook_claim")
        self._done = scripts.script("webhook_done")
        self._redeliver = scripts.script("webhook_redeliver")

    def claim(self, claimant: str, limit: int, lease: float, per_host: int, busy: Mapping[str, int] | None = None,
              now: int | None = None) -> list[Claimed]:  # fmt: skip
        """Up to `limit` due deliveries, at most `per_host` in flight to one host counting `busy`
        (host_key → deliveries this thread is sending there), each held for `lease` seconds."""
        now = now_ms() if now is None else now
        pairs = [part for host, count in (busy or {}).items() for part in (host, count)]
        args = [now, int(lease * 1000), limit, claimant, per_host, *pairs]
        replies = self._claim(args=args, client=self.connection)
        claimed = []
        for delivery_id, token, flat in replies:
            fields = {_text(name): _text(value) for name, value in zip(flat[::2], flat[1::2], strict=True)}
            claimed.append(
                Claimed(
                    id=_text(delivery_id),
                    token=_text(token),
                    job_id=fields["job_id"],
                    event=fields["event"],
                    url=fields["url"],
                    payload=fields["payload"],
                    body=fields.get("body"),
                    attempts=int(fields.get("attempts") or 0),
                    since=int(fields.get("since") or now),
                )
            )
        return claimed

    def report(self, claimed: Claimed, outcome: str, *, attempt: Mapping[str, Any] | None = None,
               next_at: int = 0, log_ttl: int = 604800, body: str = "") -> bool:  # fmt: skip
        """Record an attempt's outcome: 'delivered', 'retry' (at `next_at`, ms) or 'failed'.

        False when the claim was lost meanwhile (its lease ran out and another thread took it)."""
        args = [claimed.id, claimed.token, outcome, json.dumps(attempt) if attempt else "", next_at, log_ttl, body,
                now_ms()]  # fmt: skip
        return bool(self._done(args=args, client=self.connection))

    def wait(self, timeout: float) -> bool:
        """Block until a new delivery is recorded (True) or `timeout` seconds pass."""
        return self.connection.blpop([keys.WEBHOOK_WAKE], timeout=max(timeout, 0.01)) is not None

    def next_due(self) -> int | None:
        """When the earliest delivery is due (ms), if any (it may be one of a busy host's)."""
        first = self.connection.zrange(keys.WEBHOOK_DUE, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    def redeliver(self, job_id: str, delivery_id: str) -> str:
        """'ok', 'missing', or the state of a delivery that has not ended."""
        return _text(self._redeliver(args=[delivery_id, job_id, now_ms()], client=self.connection))

    def of_job(self, job_id: str) -> list[dict[str, Any]]:
        """The job's deliveries, oldest first, each with its attempts (two round trips)."""
        ids = [_text(value) for value in self.connection.lrange(keys.webhooks_of_job(job_id), 0, -1)]
        if not ids:
            return []
        with self.connection.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(keys.webhook(delivery_id))
                pipe.lrange(keys.webhook_attempts(delivery_id), 0, -1)
            replies = pipe.execute()
        found = []
        for index, delivery_id in enumerate(ids):
            fields = {_text(name): _text(value) for name, value in replies[2 * index].items()}
            if not fields:
                continue  # expired
            attempts = [json.loads(raw) for raw in replies[2 * index + 1]]
            found.append(view(delivery_id, fields, [{**entry, "at": _iso_ms(entry["at"])} for entry in attempts]))
        return found

    def get(self, job_id: str, delivery_id: str) -> dict[str, Any] | None:
        return next((found for found in self.of_job(job_id) if found["id"] == delivery_id), None)


def _iso_ms(value: str | None) -> str | None:
    return iso_from_timestamp(int(value) / 1000) if value else None


def view(delivery_id: str, fields: Mapping[str, str], attempts: list[dict]) -> dict[str, Any]:
    """A delivery as the API shows it."""
    state = fields.get("state") or "pending"
    return {
        "id": delivery_id,
        "job_id": fields.get("job_id"),
        "event": fields.get("event"),
        "url": fields.get("url"),
        "state": state,
        "created_at": _iso_ms(fields.get("created")),
        "next_attempt_at": _iso_ms(fields.get("next")) if state not in ENDED else None,
        "ended_at": _iso_ms(fields.get("ended")),
        "attempts": attempts,
    }
