"""Times as the API writes them: ISO 8601, UTC, milliseconds, a literal Z."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime | None) -> str | None:
    """`2026-11-24T01:00:00.123Z` for an aware datetime; None stays None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """The current time, as `iso` writes it."""
    return iso(datetime.now(UTC))


def iso_from_timestamp(seconds: float) -> str:
    """A Unix timestamp, as `iso` writes it."""
    return iso(datetime.fromtimestamp(seconds, UTC))
