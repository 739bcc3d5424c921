"""Checking a webhook's signature on the receiving side (README, "Webhooks")."""

from __future__ import annotations

import hashlib
import hmac
import time


def verify_webhook(secret: str | bytes, signature_header: str, body: bytes, tolerance: float = 300) -> bool:
    """True when `Jobsvc-Signature` signs `body` (the raw request body) with `secret`, within
    `tolerance` seconds of now (a replayed old delivery fails)."""
    key = secret.encode() if isinstance(secret, str) else secret
    pairs = [part.strip().split("=", 1) for part in signature_header.split(",") if "=" in part]
    stamps = [value for name, value in pairs if name == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(time.time() - int(stamps[0])) > tolerance:
        return False
    expected = hmac.new(key, stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for name, value in pairs if name == "v1")
