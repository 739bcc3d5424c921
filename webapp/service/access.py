"""Who is calling and what they may see: API keys, principals and the ownership rule.

With none of `API_KEYS`, `ADMIN_API_KEYS`, `VIEWER_API_KEYS` set, the API is open: callers are
anonymous (`None`) and see every job. With keys set, every caller is a `Principal` with a role:
- owner (`API_KEYS`): sees and manages only the jobs it submitted (the job records the key's
  name as its owner);
- viewer (`VIEWER_API_KEYS`): sees every job, queue and worker, changes nothing;
- admin (`ADMIN_API_KEYS`): sees and manages everything.
Roles are ranked viewer < owner < admin for what they may *do* (`Principal.has`): reads need a
viewer, writes an owner, some operations an admin. What they may *see* is `may_see`.

Each entry is `name:key` (a plain key, hashed when the app starts) or `name:sha256:<hex>`
(the hash only, so the key itself never sits in the environment). Keys are kept only as
SHA-256 hashes; a presented key is hashed and compared in constant time against every entry.

Every service operation takes the caller as a required argument (None: the open API or an
operator at the command line); nothing here reads a request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webapp.infra.errors import Forbidden

log = logging.getLogger("webapp.service.access")
STRONG_KEY_LENGTH = 16  # characters; shorter keys get a warning at start (guessing is throttled, not stopped)

VIEWER = "viewer"
OWNER = "owner"
ADMIN = "admin"
ROLES = (VIEWER, OWNER, ADMIN)  # in rank order: each may do what the ones before it may
RANK = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and its role."""

    name: str
    role: str = OWNER

    @property
    def admin(self) -> bool:
        return self.role == ADMIN

    @property
    def sees_all(self) -> bool:
        """Admins and viewers see every job; owners only their own."""
        return self.role in (ADMIN, VIEWER)

    def has(self, role: str) -> bool:
        """Whether this principal may do what `role` may (viewer < owner < admin)."""
        return RANK[self.role] >= RANK[role]


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
            if len(secret) < STRONG_KEY_LENGTH:
                log.warning(
                    "API key %r has %d characters: a short key can be guessed; use %d or more random ones, "
                    "e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'",
                    name, len(secret), STRONG_KEY_LENGTH,
                )  # fmt: skip
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
        return cls(
            parse_keys(config["API_KEYS"], role=OWNER)
            + parse_keys(config["ADMIN_API_KEYS"], role=ADMIN)
            + parse_keys(config.get("VIEWER_API_KEYS") or "", role=VIEWER)
        )

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def lookup(self, key: str) -> Principal | None:
        return self.lookup_with_fingerprint(key, b"")[0]

    def lookup_with_fingerprint(self, key: str, secret: bytes) -> tuple[Principal | None, str]:
        """The key's principal and its session fingerprint under `secret` ("" if unknown)."""
        presented = _digest(key)
        found, found_digest = None, b""
        for digest, principal in self.entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found, found_digest = principal, digest
        return found, (fingerprint(found_digest, secret) if found is not None else "")

    def by_fingerprint(self, name: str, print_: str, secret: bytes) -> Principal | None:
        """The principal a session names, if its key is still configured (else None: revoked).

        A session records the key's name and `fingerprint` (never the key, nor its hash): a key
        removed from the configuration, or moved to another name, ends its sessions at once;
        a key moved to another role keeps its sessions with the new role."""
        found = None
        for digest, principal in self.entries:
            if principal.name == name and hmac.compare_digest(fingerprint(digest, secret), print_) and found is None:
                found = principal
        return found


def fingerprint(digest: bytes, secret: bytes) -> str:
    """A keyed digest of a key's SHA-256: names the key in a session cookie without revealing it.

    Keyed by the session secret, so a stolen cookie gives nothing to test guessed keys against."""
    return hmac.new(secret, b"jobsvc-session-key:" + digest, "sha256").hexdigest()[:32]


def may_see(owner: str | None, caller: Caller) -> bool:
    """The ownership rule: the open API, admin and viewer keys see everything; an owner key, its own."""
    if caller is None or caller.sees_all:
        return True
    return owner == caller.name


def check_may_write(caller: Caller) -> None:
    """Forbidden for a read-only (viewer) key. The web's gate refuses its writes before any
    view runs; this keeps the rule for every other way into the service."""
    if caller is not None and not caller.has(OWNER):
        raise Forbidden(f"key {caller.name!r} is read-only ({caller.role}): it cannot change anything")


def owner_filter(caller: Caller) -> str | None:
    """The owner a listing must be limited to: the caller's key name, or None (everything)."""
    if caller is None or caller.sees_all:
        return None
    return caller.name


def owner_of(caller: Caller) -> str | None:
    """The owner recorded on what `caller` creates."""
    return caller.name if caller is not None else None
