"""rq-dashboard at /rq is never served without the configured credentials."""

from __future__ import annotations

import base64

import pytest

from webapp import create_app


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("path", ["/rq", "/rq/", "/rq/static/js/rq-dashboard.js", "/rq/0/data/queues.json"])
def test_without_credentials_401_with_a_challenge(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("user", "password"), [("admin", "wrong"), ("root", "test-password"), ("", "")])
def test_wrong_credentials_401(client, user, password):
    assert client.get("/rq/", headers=basic(user, password)).status_code == 401


def test_right_credentials_serve_the_dashboard(client):
    response = client.get("/rq/", headers=basic("admin", "test-password"))
    assert response.status_code == 200
    assert b"RQ dashboard" in response.data or b"rq-dashboard" in response.data.lower()
    queues = client.get("/rq/0/data/queues.json", headers=basic("admin", "test-password"))
    assert queues.status_code == 200


def test_no_configured_password_refuses_everyone(redis_server, redis_conn):
    app = create_app({"REDIS_URL": redis_server.url, "RQ_DASHBOARD_PASSWORD": None, "TESTING": True})
    client = app.test_client()
    for headers in ({}, basic("admin", ""), basic("admin", "None")):
        response = client.get("/rq/", headers=headers)
        assert response.status_code == 401
    assert "RQ_DASHBOARD_PASSWORD" in response.get_json()["error"]["message"]
