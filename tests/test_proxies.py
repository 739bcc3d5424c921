"""Behind reverse proxies (TRUSTED_PROXIES): the client's address, scheme and host come from the
proxies' X-Forwarded-* headers, so the per-client rate limit and the Origin check see the real
client; without the setting those headers are ignored, since any client could send them."""

from __future__ import annotations

import pytest

from webapp import create_app

PROXY = {"REMOTE_ADDR": "10.0.0.2"}


def app_with(redis_server, **settings):
    config = {"REDIS_URL": redis_server.url, "TESTING": True, "SUBMIT_RATE_LIMIT": "1/minute", **settings}
    return create_app(config)


def submit(client, forwarded_for: str, **headers):
    return client.post(
        "/api/jobs",
        json={"name": "add", "args": [1, 2]},
        headers={"X-Forwarded-For": forwarded_for, **headers},
        environ_base=PROXY,
    )


def test_each_forwarded_client_has_its_own_rate_limit(redis_server, redis_conn):
    client = app_with(redis_server, TRUSTED_PROXIES=1).test_client()
    assert submit(client, "203.0.113.7").status_code == 202
    assert submit(client, "198.51.100.9").status_code == 202  # another client behind the same proxy
    assert submit(client, "203.0.113.7").status_code == 429  # the first one again: over its limit


def test_without_trusted_proxies_forwarded_headers_are_ignored(redis_server, redis_conn):
    client = app_with(redis_server).test_client()
    assert submit(client, "203.0.113.7").status_code == 202
    refused = submit(client, "198.51.100.9")  # a spoofed header does not buy a new window
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers


@pytest.mark.parametrize(("trusted", "expected"), [(1, 202), (0, 403)])
def test_the_origin_check_sees_the_public_host_and_scheme(redis_server, redis_conn, trusted, expected):
    client = app_with(redis_server, TRUSTED_PROXIES=trusted, SUBMIT_RATE_LIMIT="").test_client()
    response = submit(
        client,
        "203.0.113.7",
        Origin="https://jobs.example.com",
        **{"X-Forwarded-Host": "jobs.example.com", "X-Forwarded-Proto": "https"},
    )
    assert response.status_code == expected, response.get_json()
