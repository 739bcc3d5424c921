"""Web UI sign-in: the session cookie, what it allows, how it ends, and the CSRF rule for its writes."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.keyed import ADMIN_KEY, OTHER_KEY, OWNER_KEY, SAME_SITE, VIEWER_KEY, bearer, keyed_app, sign_in
from webapp.web.sessions import COOKIE


@pytest.fixture
def app(redis_server, redis_conn):
    return keyed_app(redis_server.url)


@pytest.fixture
def client(app):
    return app.test_client()


def submit(client, headers):
    return client.post("/api/jobs", json={"name": "add", "args": [1, 2]}, headers=headers)


def test_pages_send_a_visitor_without_a_session_to_sign_in(client):
    for path in ("/", "/jobs", "/jobs/0123456789abcdef", "/overview", "/audit"):
        response = client.get(path + "?status=failed")
        assert response.status_code == 303, path
        location = urlsplit(response.headers["Location"])
        assert location.path == "/signin" and parse_qs(location.query) == {"next": [path + "?status=failed"]}
    assert client.get("/signin").status_code == 200
    for path in ("/api/jobs", "/api/stats", "/api/events"):
        assert client.get(path).status_code == 401, path
    assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


def test_sign_in_sets_a_locked_down_cookie_and_goes_where_the_user_was_headed(client):
    response = client.post("/signin", data={"key": OWNER_KEY, "next": "/jobs?queue=low"}, headers=SAME_SITE)
    assert response.status_code == 303 and response.headers["Location"] == "/jobs?queue=low"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE + "=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert OWNER_KEY not in cookie
    page = client.get("/jobs").get_data(as_text=True)
    assert 'id="signed-in-as" data-role="owner">alice' in page


def test_the_cookie_is_secure_over_https_and_behind_a_trusted_proxy(redis_server, redis_conn):
    direct = keyed_app(redis_server.url).test_client()
    response = direct.post(
        "/signin", data={"key": OWNER_KEY}, base_url="https://localhost", headers={"Origin": "https://localhost"}
    )
    assert "; Secure" in response.headers["Set-Cookie"]
    proxied = keyed_app(redis_server.url, TRUSTED_PROXIES=1).test_client()
    response = proxied.post(
        "/signin",
        data={"key": OWNER_KEY},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "jobs.example", "Origin": "https://jobs.example"},
    )
    assert response.status_code == 303 and "; Secure" in response.headers["Set-Cookie"]


def test_a_wrong_key_or_a_forged_sign_in_is_refused(client, redis_conn):
    wrong = client.post("/signin", data={"key": "nope"}, headers=SAME_SITE)
    assert wrong.status_code == 401 and "Unknown key" in wrong.get_data(as_text=True)
    assert "Set-Cookie" not in wrong.headers
    # Sign-in CSRF: a form posted from another site (or with no Origin/Referer at all) is refused.
    for headers in ({"Origin": "https://evil.example"}, {}):
        assert client.post("/signin", data={"key": OWNER_KEY}, headers=headers).status_code == 403
    assert client.get("/jobs").status_code == 303
    # Refused sign-ins are logged, not audited: someone without a key cannot fill the audit log.
    assert redis_conn.xlen("jobsvc:audit") == 0


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
def test_sign_in_never_redirects_off_site(client, target):
    response = client.post("/signin", data={"key": OWNER_KEY, "next": target}, headers=SAME_SITE)
    assert response.headers["Location"] == "/"


def test_a_session_acts_with_its_key_rights_and_sees_only_its_jobs(client):
    theirs = submit(client, bearer(OTHER_KEY)).get_json()["id"]
    token = sign_in(client, OWNER_KEY)
    mine = submit(client, {"X-CSRF-Token": token}).get_json()["id"]
    listed = {job["id"] for job in client.get("/api/jobs").get_json()["jobs"]}
    assert listed == {mine}
    assert client.get(f"/jobs/{mine}").status_code == 200
    assert client.get(f"/jobs/{theirs}").status_code == 404
    assert client.post(f"/api/jobs/{theirs}/cancel", headers={"X-CSRF-Token": token}).status_code == 404
    assert client.post(f"/api/jobs/{mine}/cancel", headers={"X-CSRF-Token": token}).get_json()["status"] == "canceled"


def test_the_dashboards_basic_credentials_a_browser_resends_do_not_hide_its_session(client):
    """A browser that answered /rq's Basic prompt sends those credentials to every page of the
    site: they are no API key, and must not turn the signed-in user's pages and calls into 401s."""
    dashboard = {"Authorization": "Basic " + base64.b64encode(b"admin:test-password").decode()}
    assert client.get("/api/jobs", headers=dashboard).status_code == 401  # no session: still no key
    token = sign_in(client, OWNER_KEY)
    assert client.get("/jobs", headers=dashboard).status_code == 200
    assert client.get("/api/jobs", headers=dashboard).status_code == 200
    assert submit(client, {**dashboard, "X-CSRF-Token": token}).status_code == 202
    assert submit(client, {**dashboard}).status_code == 403  # and the session's CSRF rule still holds
    assert client.get("/rq/", headers=dashboard).status_code == 200  # where they are meant for


def test_session_writes_need_the_csrf_token_bearer_writes_do_not(client, redis_conn):
    token = sign_in(client, OWNER_KEY)
    job_id = submit(client, {"X-CSRF-Token": token}).get_json()["id"]
    for headers in ({}, {"X-CSRF-Token": "guess"}, {"X-CSRF-Token": ""}):
        refused = client.post(f"/api/jobs/{job_id}/cancel", headers=headers)
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf_failed"
    assert client.get(f"/api/jobs/{job_id}").get_json()["status"] == "queued"
    # The token is per session: another session's token does not fit.
    other = client.application.test_client()
    wrong_token = {"X-CSRF-Token": sign_in(other, OWNER_KEY)}
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=wrong_token).status_code == 403
    # A cross-site request with the cookie is refused even with the right token (Origin check).
    crossed = client.post(
        f"/api/jobs/{job_id}/cancel", headers={"X-CSRF-Token": token, "Origin": "http://evil.example"}
    )
    assert crossed.status_code == 403 and crossed.get_json()["error"]["code"] == "cross_site_request"
    # A script with its key needs no token (and no cookie).
    script = client.application.test_client()
    assert script.post(f"/api/jobs/{job_id}/cancel", headers=bearer(OWNER_KEY)).status_code == 200


def test_a_state_changing_get_needs_a_key_not_a_session(client, redis_conn):
    sign_in(client, OWNER_KEY)
    assert client.get("/prodcons").status_code == 403  # a session cannot prove a GET came from our pages
    assert redis_conn.llen("rq:queue:default") == 0
    assert client.application.test_client().get("/prodcons", headers=bearer(OWNER_KEY)).status_code == 302
    assert redis_conn.llen("rq:queue:default") == 1


def test_sign_out_ends_the_session_for_good(client):
    token = sign_in(client, OWNER_KEY)
    copied = client.get_cookie(COOKIE).value
    assert client.post("/signout", data={"csrf_token": "wrong"}, headers=SAME_SITE).status_code == 403
    response = client.post("/signout", data={"csrf_token": token}, headers=SAME_SITE)
    assert response.status_code == 303 and response.headers["Location"] == "/signin"
    assert f"{COOKIE}=;" in response.headers["Set-Cookie"]
    assert client.get("/jobs").status_code == 303
    # A copy of the cookie taken before signing out is refused too.
    thief = client.application.test_client()
    thief.set_cookie(COOKIE, copied)
    assert thief.get("/api/jobs").status_code == 401
    assert thief.get("/jobs").status_code == 303


def test_sessions_expire(redis_server, redis_conn):
    client = keyed_app(redis_server.url, SESSION_LIFETIME=1).test_client()
    sign_in(client, OWNER_KEY)
    assert client.get("/api/jobs").status_code == 200
    time.sleep(2.1)
    assert client.get("/api/jobs").status_code == 401
    response = client.get("/jobs")
    assert response.status_code == 303 and f"{COOKIE}=;" in response.headers["Set-Cookie"]


def test_sessions_hold_across_processes_and_end_when_the_key_is_removed(redis_server, redis_conn):
    """Another web process (another app on the same Redis) honours the session: it shares the
    secret kept in Redis. A process whose configuration no longer has the key refuses it; one
    where the key moved to another role applies the new role."""
    first = keyed_app(redis_server.url).test_client()
    sign_in(first, OWNER_KEY)
    cookie = first.get_cookie(COOKIE).value

    def with_cookie(**config):
        client = keyed_app(redis_server.url, **config).test_client()
        client.set_cookie(COOKIE, cookie)
        return client

    assert with_cookie().get("/api/jobs").status_code == 200
    assert with_cookie(API_KEYS=f"bob:{OTHER_KEY}").get("/api/jobs").status_code == 401
    assert with_cookie(API_KEYS=f"alice:{OTHER_KEY}").get("/api/jobs").status_code == 401  # same name, new key
    assert with_cookie(API_KEYS=f"alicia:{OWNER_KEY}").get("/api/jobs").status_code == 401  # renamed
    moved = with_cookie(API_KEYS="", VIEWER_API_KEYS=f"alice:{OWNER_KEY}")
    assert moved.get("/api/jobs").status_code == 200
    assert submit(moved, {"X-CSRF-Token": "x"}).status_code == 403


def test_a_tampered_or_foreign_cookie_is_refused(redis_server, redis_conn, client):
    sign_in(client, OWNER_KEY)
    value = client.get_cookie(COOKIE).value
    payload, _, rest = value.partition(".")
    for forged in (payload[:-2] + "AA." + rest, value + "x", "garbage"):
        thief = client.application.test_client()
        thief.set_cookie(COOKIE, forged)
        assert thief.get("/api/jobs").status_code == 401
    # Signed with another secret (another deployment's SECRET_KEY): refused.
    other = keyed_app(redis_server.url, SECRET_KEY="another-deployment").test_client()
    other.set_cookie(COOKIE, value)
    assert other.get("/api/jobs").status_code == 401


def test_a_configured_secret_key_signs_sessions_for_every_process(redis_server, redis_conn):
    first = keyed_app(redis_server.url, SECRET_KEY="shared-secret").test_client()
    sign_in(first, ADMIN_KEY)
    second = keyed_app(redis_server.url, SECRET_KEY="shared-secret").test_client()
    second.set_cookie(COOKIE, first.get_cookie(COOKIE).value)
    assert second.get("/api/audit").status_code == 200
    assert redis_conn.exists("jobsvc:session:secret") == 0  # nothing kept in Redis then


def test_flask_sessions_end_all(app, client, redis_conn):
    sign_in(client, VIEWER_KEY)
    assert client.get("/api/jobs").status_code == 200
    result = app.test_cli_runner().invoke(args=["sessions", "end-all"])
    assert result.exit_code == 0, result.output
    app.extensions.pop("session_secret")  # what every process does within 30 s
    assert client.get("/api/jobs").status_code == 401


def test_without_keys_nothing_changes(redis_server, redis_conn):
    from webapp import create_app

    client = create_app({"REDIS_URL": redis_server.url, "TESTING": True}).test_client()
    assert client.get("/jobs").status_code == 200 and client.get("/overview").status_code == 200
    assert client.get("/signin").headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert 'content=""' in page and "Sign out" not in page and 'data-can-write="true"' in page
    assert submit(client, {}).status_code == 202


def test_guessing_keys_or_the_dashboard_password_is_held_back_per_client(make_app, redis_server):
    """Every check of presented credentials counts its refusals per client address: past the
    limit in a minute, requests presenting credentials get 429 (a right key too), others do not."""
    if time.time() % 60 > 50:  # the window is a clock minute: run it all within one
        time.sleep(61 - time.time() % 60)
    client = make_app(keyed=True, AUTH_FAILURES_PER_MINUTE=6).test_client()
    assert client.get("/api/jobs", headers=bearer("guess-1")).status_code == 401
    assert client.get("/api/jobs", headers=bearer("guess-2")).status_code == 401
    assert client.post("/signin", data={"key": "guess-3"}, headers=SAME_SITE).status_code == 401

    def dashboard(password: str) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(b"admin:" + password.encode()).decode()}

    assert client.get("/rq/", headers=dashboard("guess-4")).status_code == 401
    assert client.get("/api/jobs", headers=bearer(OWNER_KEY)).status_code == 200  # a right key is no failure
    assert client.get("/api/jobs", headers=bearer("guess-5")).status_code == 401
    assert client.get("/api/jobs", headers=bearer("guess-6")).status_code == 401
    for attempt in (
        lambda: client.get("/api/jobs", headers=bearer(OWNER_KEY)),
        lambda: client.post("/signin", data={"key": OWNER_KEY}, headers=SAME_SITE),
        lambda: client.get(
            "/rq/", headers={"Authorization": "Basic " + base64.b64encode(b"admin:test-password").decode()}
        ),
    ):
        held = attempt()
        assert held.status_code == 429
        assert held.get_json()["error"]["code"] == "too_many_failures"
        assert 1 <= int(held.headers["Retry-After"]) <= 60
    assert client.get("/healthz").status_code == 200  # no credentials: not held back
    assert client.get("/signin").status_code == 200
    # another client address has its own count
    other = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/api/jobs", headers=bearer(OWNER_KEY), environ_base=other).status_code == 200


def test_a_short_key_is_warned_about_at_start(caplog):
    from webapp.service.access import parse_keys

    with caplog.at_level("WARNING", logger="webapp.service.access"):
        parse_keys("weak:a,strong:" + "k" * 24 + ",hashed:sha256:" + "0" * 64, role="owner")
    warned = [record.getMessage() for record in caplog.records]
    assert len(warned) == 1 and "'weak' has 1 characters" in warned[0]
