"""Who is calling and what they may see: API keys, principals and the ownership rule.

With neither `API_KEYS` nor `ADMIN_API_KEYS` set, the API is open: callers are anonymous
(`None`) and see every job. With keys set, every caller is a `Principal`: an owner key sees
and manages only the jobs it submitted (the job records the key's name as its owner), an
admin key sees and manages all of them.

Each entry is `name:key` (a plain key, hashed when the app starts) or `name:sha256:<hex>`
(the hash only, so the key itself never sits in the environment). Keys are kept only as
SHA-256 hashes; a presented key is hashed and compared in constant time against every entry.

Every service operation takes the caller as a required argument (None: the open API or an
operator at the command line); nothing here reads a request.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OWNER = "owner"
ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and its role."""

    name: str
    role: str = OWNER

    @property
    def admin(self) -> bool:
        return self.role == ADMIN


Caller = Principal | None  # None: the open API (no keys configured) or an operator's CLI


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys(spec: str, *, role: str) -> list[tuple[bytes, Principal]]:
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
        entries.append((digest, Principal(name, role)))
    return entries


class KeyRing:
    """The configured keys. Lookups hash the presented key and compare against every entry in
    constant time, so neither timing nor an early exit tells which entry came close."""

    def __init__(self, entries: list[tuple[bytes, Principal]]):
        self.entries = entries

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> KeyRing:
        return cls(parse_keys(config["API_KEYS"], role=OWNER) + parse_keys(config["ADMIN_API_KEYS"], role=ADMIN))

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


def may_see(owner: str | None, caller: Caller) -> bool:
    """The ownership rule: the open API and admin keys see everything; an owner key, its own."""
    if caller is None or caller.admin:
        return True
    return owner == caller.name


def owner_filter(caller: Caller) -> str | None:
    """The owner a listing must be limited to: the caller's key name, or None (everything)."""
    if caller is None or caller.admin:
        return None
    return caller.name


def owner_of(caller: Caller) -> str | None:
    """The owner recorded on what `caller` creates."""
    return caller.name if caller is not None else None
