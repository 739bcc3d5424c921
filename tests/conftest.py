"""Fixtures: a private Redis for the whole run, flushed after every test; the app on it."""

from __future__ import annotations

import pytest

from tests.keyed import keyed_app
from tests.servers import RedisServer
from webapp import create_app


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_conn(redis_server):
    connection = redis_server.client()
    yield connection
    connection.flushall()
    connection.close()


@pytest.fixture
def app(redis_server, redis_conn):
    return create_app({"REDIS_URL": redis_server.url, "RQ_DASHBOARD_PASSWORD": "test-password", "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_app(redis_server, redis_conn):
    """Apps on the private Redis (keyed: with the test keys), their connections closed after the test."""
    made = []

    def build(keyed: bool = False, **config):
        settings = {"REDIS_URL": redis_server.url, "TESTING": True, **config}
        made.append(keyed_app(redis_server.url, **config) if keyed else create_app(settings))
        return made[-1]

    yield build
    for app in made:
        app.extensions["redis"].connection_pool.disconnect()
