"""Webhooks: which URLs a job may notify, the secrets that sign them, and one delivery attempt.

A submission's `webhook` (or its job type's default) names a URL and the events to deliver
(webapp/store/webhooks.py: WEBHOOK_EVENTS; default: the job's end). The URL's host must be in
WEBHOOK_ALLOWED_HOSTS, checked when the job is submitted and again before every attempt, so
the service never becomes a way to reach hosts the operator did not list; redirects are
never followed.

Every delivery is a POST of JSON, signed with HMAC-SHA256 over `<timestamp>.<body>` with the
secret of the API key that submitted the job (WEBHOOK_SECRETS; `*` for other callers and the
open API), in `Jobsvc-Signature: t=<unix seconds>,v1=<hex>` (one `v1` per configured secret
of that key, so secrets can be rotated). An attempt has WEBHOOK_TIMEOUT seconds in all; a
non-2xx answer, a redirect, a timeout or a connection error is retried with exponential
backoff (WEBHOOK_BACKOFF doubling up to WEBHOOK_MAX_BACKOFF, a little jitter) until
WEBHOOK_RETRY_WINDOW has passed since the delivery was recorded, then it is failed.

The HTTP client is the standard library's `http.client`: it follows no redirect by itself,
and the whole attempt is bounded by closing the socket at the deadline, which per-operation
timeouts (httpx, urllib) do not give against an endpoint that answers a byte at a time. An
answer the deadline cut short is a timeout, whatever status it began with.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webapp.infra.errors import ValidationFailed
from webapp.store.webhooks import DEFAULT_EVENTS, Claimed, Outbox, now_ms

SIGNATURE_HEADER = "Jobsvc-Signature"
USER_AGENT = "jobsvc-webhooks/1"
MAX_URL_LENGTH = 2000


def host_allowed(host: str, allowed: list[str]) -> bool:
    """`host` is listed, or under a listed `*.domain` (not the domain itself)."""
    host = host.strip("[]").rstrip(".").lower()
    for pattern in allowed:
        pattern = pattern.strip("[]").rstrip(".").lower()
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def is_ip_address(host: str) -> bool:
    """`host` (a URL's, brackets and trailing dots taken off) is an IP address, not a DNS name."""
    try:
        ipaddress.ip_address(host.strip("[]").rstrip("."))
    except ValueError:
        return False
    return True


PORT = r"(?::(?:[0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
AFTER_HOST = r"""(?:[/?][!"$-~]*)?"""  # a path and query of visible ASCII, no fragment


def url_pattern(allowed: list[str]) -> str:
    """The webhook URLs this server takes, as one regular expression: the OpenAPI document's
    pattern and check_url's last word, so a URL the document allows is one the API accepts.
    Hosts are written in lower case, as listed (`*.example.com`: any subdomain of it)."""
    hosts = []
    for entry in allowed:
        host = entry.strip("[]").rstrip(".").lower()
        if host.startswith("*."):
            hosts.append(r"(?:[a-z0-9_-]+\.)+" + re.escape(host[2:]) + r"\.?")
        elif ":" in host:  # an IPv6 address, bracketed in a URL
            hosts.append(r"\[" + re.escape(host) + r"\]")
        elif is_ip_address(host):  # an IPv4 address: a trailing dot makes it a name nothing resolves
            hosts.append(re.escape(host))
        else:
            hosts.append(re.escape(host) + r"\.?")  # a trailing dot names the same DNS host
    return rf"^https?://(?:{'|'.join(hosts)}){PORT}{AFTER_HOST}$"


def check_url(url: str, allowed: list[str]) -> str:
    """The URL if a webhook may target it; ValidationFailed naming the reason otherwise."""

    def refuse(reason: str) -> ValidationFailed:
        return ValidationFailed(
            f"webhook.url: {reason}",
            details=[{"argument": "webhook.url", "message": reason, "type": "webhook_url"}],
        )

    if not allowed:
        raise refuse("webhooks are off on this server (WEBHOOK_ALLOWED_HOSTS is empty)")
    if len(url) > MAX_URL_LENGTH:
        raise refuse(f"at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed or invalid [IPv6] host
        raise refuse("not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise refuse("an http:// or https:// URL is needed")
    try:
        parts.port  # noqa: B018 (a malformed port raises here)
    except ValueError:
        raise refuse("the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise refuse("the URL names no host")
    if parts.username or parts.password:
        raise refuse("credentials in the URL are not accepted (the signature authenticates the service)")
    if parts.fragment or any(ord(char) < 33 for char in url):
        raise refuse("no fragment, spaces or control characters")
    if parts.hostname.endswith(".") and is_ip_address(parts.hostname):
        raise refuse(f"an IP address takes no trailing dot: write {parts.hostname.rstrip('.')}")
    if not host_allowed(parts.hostname, allowed):
        raise refuse(f"host {parts.hostname!r} is not in this server's WEBHOOK_ALLOWED_HOSTS")
    if not re.fullmatch(url_pattern(allowed), url):
        raise refuse("write the host in lower case, and the rest in visible ASCII (percent-encode the others)")
    return url


def webhook_meta(spec: Mapping[str, Any] | None, allowed: list[str]) -> dict[str, Any] | None:
    """What a job keeps in its meta for a webhook request (`{"url", "events"}`), checked."""
    if not spec:
        return None
    events = list(dict.fromkeys(spec.get("events") or DEFAULT_EVENTS))
    return {"url": check_url(spec["url"], allowed), "events": events}


class Secrets:
    """WEBHOOK_SECRETS: `name:secret` entries by API key name; `*` for any other caller."""

    def __init__(self, spec: str):
        self.by_name: dict[str, list[bytes]] = {}
        for raw in (part.strip() for part in spec.split(",")):
            if not raw:
                continue
            name, sep, secret = raw.partition(":")
            if not sep or not name or len(secret) < 16:
                raise ValueError(f"WEBHOOK_SECRETS entry for {name!r}: use name:secret, a secret of 16+ characters")
            self.by_name.setdefault(name, []).append(secret.encode())

    def for_owner(self, owner: str | None) -> list[bytes]:
        """The secrets that sign deliveries of `owner`'s jobs (None: the open API)."""
        return self.by_name.get(owner, []) if owner is not None and owner in self.by_name else self.by_name.get("*", [])


def signature(secrets: list[bytes], timestamp: int, body: bytes) -> str:
    """The `Jobsvc-Signature` header: `t=<timestamp>,v1=<hex>` with one v1 per secret."""
    signed = str(timestamp).encode() + b"." + body
    codes = [hmac.new(secret, signed, hashlib.sha256).hexdigest() for secret in secrets]
    return ",".join([f"t={timestamp}", *(f"v1={code}" for code in codes)])


@dataclass
class Answer:
    """One attempt's outcome, as the delivery log keeps it."""

    status: int | None = None
    error: str | None = None
    duration_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Answer:
    """POST `body` once, within `timeout` seconds in all; no redirect is followed."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    expired = threading.Event()
    # Taken by whichever comes first, the answer's end or the deadline: an answer the deadline
    # cut short is a timeout, even when what was read parses (a status line, then headers ended
    # by the closed socket).
    decided = threading.Lock()

    def at_deadline() -> None:  # unblocks a read from an endpoint that trickles its answer
        if not decided.acquire(blocking=False):
            return  # the answer was complete in time
        expired.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, at_deadline)
    timer.daemon = True
    began = time.monotonic()
    timer.start()
    try:
        connection.request("POST", path, body=body, headers=dict(headers))
        response = connection.getresponse()
        status = response.status
        location = response.getheader("Location")
        response.read(4096)
        if not decided.acquire(blocking=False):
            return Answer(None, f"no answer within {timeout:g} s (HTTP {status} begun, not finished)", _ms(began))
        if 300 <= status < 400:
            return Answer(status, f"redirect to {location!r} not followed", _ms(began))
        return Answer(status, None if 200 <= status < 300 else f"HTTP {status}", _ms(began))
    except (OSError, http.client.HTTPException) as exc:
        reason = f"no answer within {timeout:g} s" if expired.is_set() or isinstance(exc, TimeoutError) else None
        return Answer(None, reason or f"{type(exc).__name__}: {exc}"[:300], _ms(began))
    finally:
        timer.cancel()
        connection.close()


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)


class Deliverer:
    """Makes one attempt of a claimed delivery and reports it to the outbox."""

    def __init__(self, outbox: Outbox, config: Mapping[str, Any], read_job: Callable[[str], dict | None]):
        self.outbox = outbox
        self.config = config
        self.secrets = Secrets(config["WEBHOOK_SECRETS"])
        self.read_job = read_job

    def body(self, claimed: Claimed) -> str:
        """The body of every attempt of this delivery: the event, and the job as it was at the first."""
        if claimed.body:
            return claimed.body
        event = json.loads(claimed.payload)
        document = {"id": claimed.id, "event": event, "job": self.read_job(claimed.job_id)}
        return json.dumps(document, separators=(",", ":"), default=str)

    def attempt(self, claimed: Claimed) -> str:
        """Deliver once; returns the outcome reported ('delivered', 'retry', 'failed' or 'lost')."""
        body = self.body(claimed)
        event = json.loads(claimed.payload)
        secrets = self.secrets.for_owner(event.get("owner"))
        started = now_ms()
        try:
            check_url(claimed.url, self.config["WEBHOOK_ALLOWED_HOSTS"])
        except ValidationFailed as exc:
            return self._report(claimed, Answer(error=exc.message), started, body, final=True)
        if not secrets:
            return self._report(claimed, Answer(error="no WEBHOOK_SECRETS entry signs this job's deliveries"),
                                started, body)  # fmt: skip
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Jobsvc-Delivery": claimed.id,
            "Jobsvc-Event": claimed.event,
            "Jobsvc-Attempt": str(claimed.attempts + 1),
            SIGNATURE_HEADER: signature(secrets, timestamp, body.encode()),
        }
        answer = post(claimed.url, body.encode(), headers, float(self.config["WEBHOOK_TIMEOUT"]))
        return self._report(claimed, answer, started, body)

    def _report(self, claimed: Claimed, answer: Answer, started: int, body: str, final: bool = False) -> str:
        # `attempt`: its place in the current series (the Jobsvc-Attempt it went with), 1 again after a redeliver.
        attempt = {"at": started, "attempt": claimed.attempts + 1, "status": answer.status, "error": answer.error,
                   "duration_ms": answer.duration_ms}  # fmt: skip
        if answer.delivered:
            outcome, next_at = "delivered", 0
        else:
            next_at = now_ms() + int(self.backoff(claimed.attempts + 1) * 1000)
            window_end = claimed.since + int(float(self.config["WEBHOOK_RETRY_WINDOW"]) * 1000)
            outcome = "failed" if final or next_at > window_end else "retry"
        kept = self.outbox.report(claimed, outcome, attempt=attempt, next_at=next_at,
                                  log_ttl=int(self.config["WEBHOOK_LOG_TTL"]), body=body)  # fmt: skip
        return outcome if kept else "lost"

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after `attempts` failed ones: doubling, capped, ±10 %."""
        base = float(self.config["WEBHOOK_BACKOFF"]) * 2 ** min(attempts - 1, 30)
        return min(base, float(self.config["WEBHOOK_MAX_BACKOFF"])) * random.uniform(0.9, 1.1)
