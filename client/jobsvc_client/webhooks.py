"""Checking a webhook's signature on the receiving side (README, "Webhooks")."""

from __future__ import annotations

import hashlib
import hmac
import time

# Unix seconds have 10 digits until the year 2286; a longer `t` is no timestamp (and `int()` of
# thousands of digits raises, or takes long).
MAX_STAMP_DIGITS = 12


def verify_webhook(secret: str | bytes, signature_header: str | None, body: bytes, tolerance: float = 300) -> bool:
    """True when `Jobsvc-Signature` signs `body` (the raw request body) with `secret`, within
    `tolerance` seconds of now (a replayed old delivery fails). Anyone can send a request with
    any header, so a missing or malformed one is False, never an exception."""
    if not isinstance(signature_header, str):
        return False
    key = secret.encode() if isinstance(secret, str) else secret
    pairs = [part.strip().split("=", 1) for part in signature_header.split(",") if "=" in part]
    stamps = [value for name, value in pairs if name == "t"]
    if len(stamps) != 1 or not _is_stamp(stamps[0]) or abs(time.time() - int(stamps[0])) > tolerance:
        return False
    expected = hmac.new(key, stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    # compare_digest takes str of ASCII only (TypeError otherwise): no hex digest is anything else.
    return any(hmac.compare_digest(expected, value) for name, value in pairs if name == "v1" and value.isascii())


def _is_stamp(value: str) -> bool:
    """ASCII digits only: `isdigit()` alone is true for '²' or '٣', which `int()` refuses or reads."""
    return value.isascii() and value.isdigit() and len(value) <= MAX_STAMP_DIGITS
