"""Security headers on every response, and a same-origin check on state-changing requests.

Every response gets a strict Content-Security-Policy (scripts and styles from this origin
only, no inline code, no framing) and the usual companions. A view that needs another
policy sets its own `Content-Security-Policy` header; it is then left as it is.

Browsers send `Origin` on every cross-site POST/PUT/PATCH/DELETE, form posts included, so a
request that names another origin is refused before any view runs. Clients that are not
browsers (curl, SDKs) send no Origin and are not affected.

Behind reverse proxies (TRUSTED_PROXIES = how many), Werkzeug's ProxyFix takes the client's
address, scheme and host from their X-Forwarded-* headers, so the per-client rate limit, the
Origin checks and the secure-cookie decisions see the real client; without it those headers
are ignored (anyone could send them).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Request, Response, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp.infra.errors import APIError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

DEFAULT_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# Pages whose third-party UI sets inline styles (Swagger UI on the API docs page). Their scripts
# stay 'self'-only; inline styles cannot run code.
INLINE_STYLE_CSP = DEFAULT_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
POLICY_BY_ENDPOINT = {"docs.docs_page": INLINE_STYLE_CSP}

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


class CrossSiteRequest(APIError):
    """A state-changing request sent from another site's page."""

    status = 403
    code = "cross_site_request"


def origin_of(url: str | None) -> str | None:
    """`scheme://host[:port]` of a URL, lowercased; None when there is none, "null" (an origin
    that proves nothing, as browsers send for opaque origins) when it cannot be parsed."""
    if not url or url == "null":
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. 'http://[::1': anyone can send it, so it must not be a 500
        return "null"
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def request_origin() -> str | None:
    """Where the request says it comes from: `Origin`, else the origin of `Referer`."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin_of(origin) or "null"
    return origin_of(request.headers.get("Referer"))


def is_same_origin(origin: str) -> bool:
    """Whether `origin` names the host this request was sent to.

    Only the host and port are compared: behind a TLS-terminating proxy the app sees http
    while the browser says https, and a different scheme on the same host:port is no attack.
    """
    return urlsplit(origin).netloc == request.host.lower()


def refuse_cross_site() -> None:
    """Refuse a state-changing request whose Origin (or Referer) is another site."""
    if request.method in SAFE_METHODS:
        return
    origin = request_origin()
    if origin is not None and not is_same_origin(origin):
        raise CrossSiteRequest(
            f"{request.method} from {origin} refused: state-changing requests must come from this site's pages"
        )


def require_same_origin() -> None:
    """For this site's own form posts: the request must say it comes from this site.

    Stricter than `refuse_cross_site`: a missing Origin and Referer is refused too.
    """
    origin = request_origin()
    if origin is None or not is_same_origin(origin):
        raise CrossSiteRequest(
            f"{request.method} {request.path} refused: it must come from this site's pages (Origin or Referer)"
        )


_LOWERED = tuple((name.lower(), name, value) for name, value in HEADERS.items())


def add_security_headers(response: Response) -> Response:
    """Headers a view did not set itself get the strict defaults. The names a response has are
    read once: a `setdefault` per header scans them all again (a tenth of a small route's CPU)."""
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    if "content-security-policy" not in present:
        headers.add("Content-Security-Policy", POLICY_BY_ENDPOINT.get(request.endpoint, DEFAULT_CSP))
    for lowered, name, value in _LOWERED:
        if lowered not in present:
            headers.add(name, value)
    return response


class CookieSessionsOnDemand(SecureCookieSessionInterface):
    """Flask's cookie session, opened only when the request carries one: Flask builds its signing
    serializer on every request otherwise (3 % of an API request's CPU), and no API request has
    that cookie (the service's own sign-in cookie is webapp/web/sessions.py's)."""

    def open_session(self, app: Flask, request: Request):
        if app.secret_key and self.get_cookie_name(app) not in request.cookies:
            return self.session_class()  # what Flask returns then, without building its signer
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.session_interface = CookieSessionsOnDemand()
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    app.before_request(refuse_cross_site)
    app.after_request(add_security_headers)
