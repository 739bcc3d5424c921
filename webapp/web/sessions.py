"""Web UI sessions: sign in once with an API key, then the pages act with that key's rights.

The session is a cookie, `jobsvc_session`, signed with itsdangerous (Flask's own signing
library) and holding no secret: the key's name, a fingerprint of the key (an HMAC of its
SHA-256 under the signing secret, so the cookie names the key without revealing it), a
session id and a CSRF token. It is HttpOnly, SameSite=Lax, Secure whenever the request came
over https (behind TRUSTED_PROXIES, as the proxy says), and ends:
- after SESSION_LIFETIME seconds from sign-in (the signature carries the time; the cookie's
  Max-Age says the same to the browser);
- at sign-out: the session id is recorded in Redis until it would have expired, so a copy of
  the cookie is refused too;
- when its key is removed from the configuration (or renamed): every request looks the name
  and fingerprint up in the configured keys (`KeyRing.by_fingerprint`); a key moved to another
  role keeps its sessions, with the new role.

The signing secret is `SECRET_KEY` when configured (set the same value on every web machine).
Unset, it is a random secret kept in Redis (webapp/store/sessions.py) and shared by every web
process on that Redis, so no configuration is needed and sessions survive a web restart.
Forging a session needs the secret *and* the key's hash, which only the web's configuration
holds. `flask sessions end-all` replaces it: every session ends.

Every state-changing request a session makes must carry its CSRF token (the pages' script
sends it in `X-CSRF-Token`, forms in `csrf_token`); the same-origin check of
webapp/web/security.py and SameSite come on top. Requests with a Bearer key need neither.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from flask import Response, current_app, g, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from webapp.service.access import KeyRing, Principal
from webapp.store import sessions as store
from webapp.web.extensions import get_redis

COOKIE = "jobsvc_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SALT = "jobsvc-session"
SECRET_REFRESH = 30.0  # seconds a process trusts its copy of the Redis-held secret


@dataclass(frozen=True)
class Session:
    """A valid session: who, its id, its CSRF token and when it was issued (Unix seconds)."""

    principal: Principal
    session_id: str
    csrf: str
    issued_at: int


def keyring() -> KeyRing:
    return current_app.extensions["jobsvc_keys"]


def lifetime() -> int:
    return int(current_app.config["SESSION_LIFETIME"])


def signing_secret() -> bytes:
    """SECRET_KEY when configured, else the secret shared through Redis (re-read every 30 s,
    so `flask sessions end-all` reaches every process)."""
    config = current_app.config
    if not config.get("SECRET_KEY_GENERATED"):
        secret = config["SECRET_KEY"]
        return secret if isinstance(secret, bytes) else str(secret).encode()
    cached = current_app.extensions.get("session_secret")
    now = time.monotonic()
    if cached is None or now - cached[1] > SECRET_REFRESH:
        cached = (store.shared_secret(get_redis()), now)
        current_app.extensions["session_secret"] = cached
    return cached[0]


def _serializer(secret: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def current() -> Session | None:
    """The request's valid session, or None (no cookie, bad signature, expired, signed out,
    or its key is no longer configured). Read once per request."""
    if "ui_session" in g:
        return g.ui_session
    g.ui_session = None
    raw = request.cookies.get(COOKIE)
    if not raw or not keyring().enabled:
        return None
    secret = signing_secret()
    try:
        claims, issued = _serializer(secret).loads(raw, max_age=lifetime(), return_timestamp=True)
        name, print_, session_id, csrf = claims["k"], claims["f"], claims["s"], claims["c"]
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    principal = keyring().by_fingerprint(str(name), str(print_), secret)
    if principal is None or store.has_ended(get_redis(), str(session_id)):
        return None
    g.ui_session = Session(principal, str(session_id), str(csrf), int(issued.timestamp()))
    return g.ui_session


def has_cookie() -> bool:
    return COOKIE in request.cookies


def csrf_ok(session: Session) -> bool:
    """Whether the request carries the session's CSRF token (header, or form field)."""
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        presented = request.form.get(CSRF_FIELD)
    return bool(presented) and hmac.compare_digest(presented.encode(), session.csrf.encode())


def sign_in(response: Response, key: str) -> Principal | None:
    """Start a session for `key` on `response`; None (and no cookie) for an unknown key."""
    secret = signing_secret()
    principal, print_ = keyring().lookup_with_fingerprint(key, secret)
    if principal is None:
        return None
    claims = {"k": principal.name, "f": print_, "s": secrets.token_urlsafe(16), "c": secrets.token_urlsafe(32)}
    response.set_cookie(
        COOKIE,
        _serializer(secret).dumps(claims),
        max_age=lifetime(),
        path="/",
        secure=request.is_secure,
        httponly=True,
        samesite="Lax",
    )
    return principal


def sign_out(response: Response, session: Session | None) -> None:
    """End `session` for good (recorded in Redis until it would have expired) and drop the cookie."""
    if session is not None:
        remaining = session.issued_at + lifetime() - int(time.time())
        if remaining > 0:
            store.end_session(get_redis(), session.session_id, remaining)
    forget_cookie(response)


def forget_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=request.is_secure, httponly=True, samesite="Lax")
