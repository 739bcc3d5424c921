"""The write API through real gunicorn: concurrent duplicates and chunked bodies."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.servers import start_web


@pytest.fixture(scope="module")
def web(redis_server):
    process, base = start_web(redis_server.url, MAX_CONTENT_LENGTH="4096")
    yield base
    process.stop()


def test_parallel_duplicates_with_one_idempotency_key_make_exactly_one_job(web, redis_conn):
    body = {"name": "add", "args": [20, 22]}
    barrier_clients = [httpx.Client(base_url=web, timeout=10) for _ in range(20)]
    for http in barrier_clients:
        http.get("/healthz")  # connect first, so the submissions really overlap

    def one(http):
        return http.post("/api/jobs", json=body, headers={"Idempotency-Key": "parallel-1"})

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(one, barrier_clients))
    for http in barrier_clients:
        http.close()
    codes = sorted(response.status_code for response in responses)
    assert codes == [200] * 19 + [202], codes
    assert len({response.json()["id"] for response in responses}) == 1
    assert len(redis_conn.keys("rq:job:*")) == 1
    assert redis_conn.llen("rq:queue:default") == 1


def chunks(total: int, size: int = 1024):
    yield b'{"name": "fail", "args": ["'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"]}'


def test_chunked_body_over_the_limit_is_413_json(web, redis_conn):
    with httpx.Client(base_url=web, timeout=10) as http:
        response = http.post("/api/jobs", content=chunks(64 * 1024), headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_entity_too_large"
    assert redis_conn.keys("rq:job:*") == []


def test_small_chunked_body_is_accepted(web, redis_conn):
    with httpx.Client(base_url=web, timeout=10) as http:
        response = http.post("/api/jobs", content=chunks(100, 50), headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    assert redis_conn.llen("rq:queue:default") == 1


def test_wrong_content_type_over_http_is_415(web, redis_conn):
    with httpx.Client(base_url=web, timeout=10) as http:
        response = http.post("/api/jobs", content=b'{"name": "add", "args": [1, 2]}')
    assert response.status_code == 415 and response.headers["content-type"] == "application/json"
    assert redis_conn.keys("rq:*") == []
