"""Opt-in API keys: `Authorization: Bearer <key>`, keys kept only as SHA-256 hashes.

With neither `API_KEYS` nor `ADMIN_API_KEYS` set, the API is open and every request acts as
no one in particular (`principal() is None`). With keys set, every `/api` request needs one:
a client key sees and manages only the jobs it submitted, an admin key sees all of them.

Each entry is `name:key` (a plain key, hashed when the app starts) or `name:sha256:<hex>`
(the hash only, so the key itself never sits in the environment). The name is what a job
records as its owner.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import Flask, current_app, g, request

from webapp.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name, and whether it may see every job."""

    name: str
    admin: bool = False


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys(spec: str, *, admin: bool) -> list[tuple[bytes, Principal]]:
    """Turn `name:key,name:sha256:<hex>` into (hash, principal) pairs; plain keys are hashed here."""
    entries = []
    for raw in (part.strip() for part in spec.split(",")):
        if not raw:
            continue
        name, sep, secret = raw.partition(":")
        if not sep or not name or not secret:
            raise ValueError(f"API key entry {raw[:12]!r}...: use name:key or name:sha256:<64 hex digits>")
        if secret.startswith("sha256:"):
            hexdigest = secret.removeprefix("sha256:")
            try:
                digest = bytes.fromhex(hexdigest)
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise ValueError(f"API key entry for {name!r}: sha256: must be followed by 64 hex digits")
        else:
            digest = _digest(secret)
        entries.append((digest, Principal(name, admin)))
    return entries


class KeyRing:
    """The configured keys. Lookups hash the presented key and compare against every entry in
    constant time, so neither timing nor an early exit tells which entry came close."""

    def __init__(self, entries: list[tuple[bytes, Principal]]):
        self.entries = entries

    @classmethod
    def from_config(cls, config) -> KeyRing:
        return cls(parse_keys(config["API_KEYS"], admin=False) + parse_keys(config["ADMIN_API_KEYS"], admin=True))

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def lookup(self, key: str) -> Principal | None:
        presented = _digest(key)
        found = None
        for digest, principal in self.entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = principal
        return found


def authenticate() -> None:
    """`before_request` of the API: sets the caller's principal, or refuses with 401."""
    ring: KeyRing = current_app.extensions["jobsvc_keys"]
    g.principal = None
    if not ring.enabled:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized(
            "this API needs a key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="jobsvc"'},
        )
    principal = ring.lookup(key.strip())
    if principal is None:
        raise Unauthorized(
            "unknown API key", headers={"WWW-Authenticate": 'Bearer realm="jobsvc", error="invalid_token"'}
        )
    g.principal = principal


def principal() -> Principal | None:
    """The caller of the current request; None when the API is open (no keys configured)."""
    return g.get("principal")


def init_app(app: Flask) -> None:
    app.extensions["jobsvc_keys"] = KeyRing.from_config(app.config)
