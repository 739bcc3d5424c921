"""The audit log: who changed what, when, from where, and how it ended. One Redis stream.

Each entry is one state-changing action: a request to the API, the dashboard or a page
(recorded by the web's hook, webapp/web/audit.py) or a `flask` command (webapp/cli/audit.py).
Its stream id says when (milliseconds) and orders the entries; its fields are strings:
`actor` (the API key's name, the dashboard user or the operator's login; "" on the open API),
`role`, `via` (bearer, session, basic, cli, open), `action`, `method` and `path`, `target` and
`details` (JSON objects: the ids from the URL, what the body says it acts on), `status` (the
HTTP status, or a command's exit status), `client` (address or host), and where they apply
`ok` ("0": a success status that did nothing) and `note`.

Retention is bounded twice, both on every append: entries older than AUDIT_RETENTION seconds
go (XADD ... MINID), and beyond AUDIT_MAXLEN entries the oldest go (XTRIM MAXLEN), both
approximate (`~`) so Redis trims whole stream nodes cheaply.

Refused requests (a status of 400 or more, not a command's) are recorded within a budget per
caller (key name, else client address) and minute, AUDIT_REFUSALS_PER_MINUTE: a viewer key
sending refused writes in a loop would otherwise push every real entry out of the bounded log
in minutes. The entry that reaches the budget says so (`note`); the rest of that minute's
refusals are not recorded (`record` returns None: the web logs them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redis import Redis

from webapp.infra.clock import iso_from_timestamp
from webapp.store import keys, scripts
from webapp.store.events import format_event_id, parse_event_id

FIELDS = ("actor", "role", "via", "action", "method", "path", "target", "details", "status", "client", "note")
OVER_BUDGET = "the caller's later refusals in this minute are not recorded (AUDIT_REFUSALS_PER_MINUTE)"
SCAN_FACTOR = 20  # a filtered page reads at most this many entries per entry asked for


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json(value: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(value or {}), separators=(",", ":"), sort_keys=True, default=str)


class AuditLog:
    """Appends to and pages through the audit stream of one Redis."""

    def __init__(self, connection: Redis, retention: int, maxlen: int, refusals_per_minute: int = 0):
        self.connection = connection
        self.retention = retention
        self.maxlen = maxlen
        self.refusals_per_minute = refusals_per_minute
        self.refusal_script = scripts.script("audit_refusal")

    @classmethod
    def from_config(cls, connection: Redis, config: Mapping[str, Any]) -> AuditLog:
        return cls(
            connection,
            int(config["AUDIT_RETENTION"]),
            int(config["AUDIT_MAXLEN"]),
            int(config["AUDIT_REFUSALS_PER_MINUTE"]),
        )

    def record(self, *, actor: str | None, role: str, via: str, action: str, status: int, method: str = "",
               path: str = "", target: Mapping[str, Any] | None = None, details: Mapping[str, Any] | None = None,
               client: str | None = None, ok: bool | None = None) -> str | None:  # fmt: skip
        """Append one entry (one round trip, trimming included); returns its id, or None for a
        refusal over its caller's budget, which is not recorded. `ok=False` marks an action that
        answered a success status yet did nothing (rq-dashboard's `{"status": "ERROR"}`)."""
        entry = {
            "actor": actor or "",
            "role": role,
            "via": via,
            "action": action,
            "method": method,
            "path": path,
            "target": _json({str(name): str(value) for name, value in (target or {}).items()}),
            "details": _json(details),
            "status": str(int(status)),
            "client": client or "",
        }
        if ok is False:
            entry["ok"] = "0"
        now = time.time()
        oldest_kept = f"{int((now - self.retention) * 1000)}-0"
        if self.refusals_per_minute > 0 and via != "cli" and int(status) >= 400:
            caller = f"key:{actor}" if actor else f"address:{client or ''}"  # the open API: by client
            found = scripts.call(
                self.connection,
                self.refusal_script,
                [keys.AUDIT, f"{keys.AUDIT_REFUSALS_PREFIX}{int(now // 60)}:{caller}"],
                [oldest_kept, self.maxlen, self.refusals_per_minute, 120, OVER_BUDGET,
                 *(part for pair in entry.items() for part in pair)],
            )  # fmt: skip
            return _text(found) if found else None
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.xadd(keys.AUDIT, entry, minid=oldest_kept, approximate=True)
            pipe.xtrim(keys.AUDIT, maxlen=self.maxlen, approximate=True)
            entry_id, _ = pipe.execute()
        return _text(entry_id)

    def page(self, *, limit: int = 50, cursor: str | None = None, actor: str | None = None,
             action: str | None = None, target: str | None = None, since: datetime | None = None,
             until: datetime | None = None) -> dict[str, Any]:  # fmt: skip
        """Entries newest first, matching every filter given, and the cursor of the next page.

        `cursor` is the id of the last entry of the previous page; `target` matches part of the
        target or details (a job id, a queue, a filter value). A page reads at most
        `limit * SCAN_FACTOR` entries, so it may hold fewer than `limit` with a `next_cursor`:
        follow it until it is null.
        """
        high = "+" if until is None else _millis(until)
        if cursor is not None:
            before = _just_before(parse_event_id(cursor))
            if before is None:
                return {"entries": [], "next_cursor": None}
            high = before
        low = "-" if since is None else _millis(since)
        found: list[dict[str, Any]] = []
        budget, last_id, exhausted = limit * SCAN_FACTOR, None, False
        while len(found) < limit and budget > 0:
            count = min(budget, max(limit, 100))
            batch = self.connection.xrevrange(keys.AUDIT, max=high, min=low, count=count)
            budget -= count
            consumed = 0
            for entry_id, fields in batch:
                consumed += 1
                entry = decode(entry_id, fields)
                last_id = entry["id"]
                if _matches(entry, actor, action, target):
                    found.append(entry)
                    if len(found) == limit:
                        break
            if consumed == len(batch) and len(batch) < count:
                exhausted = True  # read to the end of the range
                break
            high = _just_before(parse_event_id(last_id))
            if high is None:
                exhausted = True
                break
        if not exhausted and last_id is not None:
            # Is there anything older at all? Saves the reader a last, empty page.
            exhausted = not self.connection.xrevrange(keys.AUDIT, max=high, min=low, count=1)
        return {"entries": found, "next_cursor": None if exhausted else last_id}


def _millis(moment: datetime) -> str:
    """A time as a stream id bound (milliseconds), clamped to what Redis accepts."""
    return str(min(max(0, int(moment.timestamp() * 1000)), 2**63 - 1))


def _just_before(entry_id: tuple[int, int]) -> str | None:
    """The greatest stream id below `entry_id` (None below 0-0): an exclusive bound Redis 6.2 reads."""
    millis, sequence = entry_id
    if sequence > 0:
        return format_event_id((millis, sequence - 1))
    if millis > 0:
        return format_event_id((millis - 1, 2**64 - 1))
    return None


def _matches(entry: dict[str, Any], actor: str | None, action: str | None, target: str | None) -> bool:
    if actor is not None and entry["actor"] != actor:
        return False
    if action is not None and entry["action"] != action:
        return False
    if target is not None:
        text = json.dumps([entry["target"], entry["details"]], default=str)
        if target not in text:
            return False
    return True


def decode(entry_id: bytes | str, fields: Mapping) -> dict[str, Any]:
    """A stream entry as the API shows it: id, time, and the fields with their types back."""
    text = {_text(name): _text(value) for name, value in fields.items()}
    ident = _text(entry_id)
    millis = int(ident.split("-", 1)[0])
    status = int(text.get("status") or 0)
    return {
        "id": ident,
        "at": iso_from_timestamp(millis / 1000),
        "actor": text.get("actor") or None,
        "role": text.get("role") or None,
        "via": text.get("via") or None,
        "action": text.get("action", ""),
        "method": text.get("method") or None,
        "path": text.get("path") or None,
        "target": _load(text.get("target")),
        "details": _load(text.get("details")),
        "status": status,
        "ok": (status < 400 if text.get("via") != "cli" else status == 0) and text.get("ok") != "0",
        "client": text.get("client") or None,
        "note": text.get("note") or None,
    }


def _load(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
