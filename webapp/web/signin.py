"""The sign-in and sign-out pages of the web UI (sessions themselves: webapp/web/sessions.py).

Both are form posts from this site's own pages: sign-in must come with a same-origin Origin
or Referer (no session exists yet to carry a CSRF token, and a forged sign-in would put the
victim in the attacker's session); sign-out carries the session's CSRF token. A refused
sign-in is logged with the client's address, not put in the audit log: whoever has no key
must not be able to push entries out of it (webapp/web/audit.py).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for

from webapp.web import auth, sessions
from webapp.web.audit import audit_action
from webapp.web.security import require_same_origin
from webapp.web.throttle import takes_credentials

log = logging.getLogger("webapp.web.signin")

bp = auth.public(Blueprint("signin", __name__))


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return url_for("pages.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return url_for("pages.index")
    return target


@bp.get("/signin")
def signin_page():
    """The sign-in form; straight on when keys are not configured or a session is valid."""
    target = safe_next(request.args.get("next"))
    if not auth.keyring().enabled or sessions.current() is not None:
        return redirect(target, 303)
    return render_template("signin.html", next=target, error=None)


@bp.post("/signin")
@audit_action("signIn")
@takes_credentials
def sign_in():
    """Check the key; on success set the session cookie and go where the user was headed."""
    require_same_origin()
    target = safe_next(request.form.get("next"))
    if not auth.keyring().enabled:
        return redirect(target, 303)
    response = redirect(target, 303)
    principal = sessions.sign_in(response, request.form.get("key", "").strip())
    if principal is None:
        log.warning("sign-in refused: unknown key, from %s", request.remote_addr)
        return render_template("signin.html", next=target, error="Unknown key. Check it and try again."), 401
    auth.set_identity(auth.Identity(principal, "session"))  # the audit log records who signed in
    log.info("signed in: key %r (%s), from %s", principal.name, principal.role, request.remote_addr)
    return response


@bp.post("/signout")
@audit_action("signOut")
def sign_out():
    """End the session (for good: a copy of the cookie is refused too) and show the sign-in page."""
    require_same_origin()
    session = sessions.current()
    response = redirect(url_for("signin.signin_page"), 303)
    if session is not None:
        if not sessions.csrf_ok(session):
            raise auth.CsrfFailed("sign-out refused: the form did not carry this session's CSRF token")
        auth.set_identity(auth.Identity(session.principal, "session"))
    sessions.sign_out(response, session)
    return response


@bp.app_context_processor
def who_is_signed_in() -> dict:
    """What every template needs to show the right controls: who is signed in, what they may do,
    and the CSRF token the pages' script sends (empty without a session)."""
    enabled = auth.keyring().enabled
    found = auth.identity()
    principal = found.principal if found is not None else None
    session = sessions.current() if enabled and found is not None and found.via == "session" else None
    return {
        "keys_enabled": enabled,
        "principal": principal,
        "csrf_token": session.csrf if session is not None else "",
        "can_write": not enabled or (principal is not None and principal.has(auth.OWNER)),
        "is_admin": not enabled or (principal is not None and principal.admin),
        # The dashboard shows every job: admins (and viewers, read-only) reach it with their session.
        "dashboard_allowed": not enabled or (principal is not None and principal.sees_all),
    }
