"""pydantic's validation errors as the API's: one detail per argument, one summary line."""

from __future__ import annotations

from pydantic import ValidationError

from webapp.infra.errors import ValidationFailed


def where(loc: tuple) -> str:
    """`("jobs", 2, "a")` → `jobs[2].a`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def details_of(exc: ValidationError, default: str = "body") -> list[dict]:
    """One `{argument, message, type}` per error."""
    return [
        {"argument": where(err["loc"]) or default, "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def summary(details: list[dict]) -> str:
    return "; ".join(f"{detail['argument']}: {detail['message']}" for detail in details)


def failed(exc: ValidationError, prefix: str, default: str = "body") -> ValidationFailed:
    """A 422 naming each bad argument."""
    details = details_of(exc, default)
    return ValidationFailed(f"{prefix}{summary(details)}", details=details)
