"""API keys and job ownership, through Flask's test client on a real private Redis."""

from __future__ import annotations

import hashlib
import json

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from webapp import create_app
from webapp.service.access import OWNER, KeyRing, parse_keys

ALICE, BOB, ADMIN = "alice-key-1", "bob-key-2", "root-key-3"


@pytest.fixture
def client(redis_server, redis_conn):
    bob_hash = hashlib.sha256(BOB.encode()).hexdigest()
    app = create_app(
        {
            "REDIS_URL": redis_server.url,
            "TESTING": True,
            "API_KEYS": f"alice:{ALICE}, bob:sha256:{bob_hash}",
            "ADMIN_API_KEYS": f"ops:{ADMIN}",
        }
    )
    return app.test_client()


def as_(key):
    return {"Authorization": f"Bearer {key}"}


def submit(client, key, body=None):
    body = body or {"name": "add", "args": [1, 2]}
    return client.post("/api/jobs", data=json.dumps(body), content_type="application/json", headers=as_(key))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {ALICE}"}],
)
def test_missing_or_wrong_key_is_401_json(client, redis_conn, headers):
    for response in (
        client.post(
            "/api/jobs", data='{"name": "add", "args": [1, 2]}', content_type="application/json", headers=headers
        ),
        client.get("/api/jobs/0123456789abcdef", headers=headers),
        client.get("/api/functions", headers=headers),
    ):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert redis_conn.keys("rq:*") == []


def test_jobs_record_their_owner_and_others_get_404(client, redis_conn):
    job_id = submit(client, ALICE).get_json()["id"]
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.meta["owner"] == "alice"
    assert client.get(f"/api/jobs/{job_id}", headers=as_(ALICE)).status_code == 200
    # Bob (key given as its hash in the config) neither sees, cancels nor retries it.
    for response in (
        client.get(f"/api/jobs/{job_id}", headers=as_(BOB)),
        client.post(f"/api/jobs/{job_id}/cancel", headers=as_(BOB)),
        client.post(f"/api/jobs/{job_id}/retry", content_type="application/json", headers=as_(BOB)),
    ):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
    assert job.get_status(refresh=True).value == "queued"
    # Nor can he make his job depend on it: to him it does not exist.
    response = submit(client, BOB, {"name": "add", "args": [1, 2], "depends_on": [job_id]})
    assert response.status_code == 404
    # The admin key sees and manages every job.
    assert client.get(f"/api/jobs/{job_id}", headers=as_(ADMIN)).status_code == 200
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=as_(ADMIN)).get_json()["status"] == "canceled"
    assert (
        client.post(f"/api/jobs/{job_id}/retry", content_type="application/json", headers=as_(ALICE)).status_code == 202
    )


def test_idempotency_keys_are_per_client(client):
    body = {"name": "add", "args": [1, 2]}
    headers_alice = {**as_(ALICE), "Idempotency-Key": "same"}
    headers_bob = {**as_(BOB), "Idempotency-Key": "same"}
    first = client.post("/api/jobs", data=json.dumps(body), content_type="application/json", headers=headers_alice)
    second = client.post("/api/jobs", data=json.dumps(body), content_type="application/json", headers=headers_bob)
    assert first.status_code == second.status_code == 202
    assert first.get_json()["id"] != second.get_json()["id"]


def test_without_keys_the_api_is_open_and_jobs_have_no_owner(app, redis_conn):
    client = app.test_client()
    response = client.post("/api/jobs", data='{"name": "add", "args": [1, 2]}', content_type="application/json")
    assert response.status_code == 202
    job = Job.fetch(response.get_json()["id"], connection=redis_conn, serializer=JSONSerializer)
    assert "owner" not in job.meta


def test_keys_are_kept_as_hashes_and_bad_entries_refused():
    ring = KeyRing(parse_keys("a:plain-secret", role=OWNER))
    assert all(len(digest) == 32 and b"plain-secret" not in digest for digest, _ in ring.entries)
    assert ring.lookup("plain-secret").name == "a" and ring.lookup("plain-secre") is None
    for bad in ("nokey", "a:sha256:abc", ":x"):
        with pytest.raises(ValueError):
            parse_keys(bad, role=OWNER)


def test_listing_shows_a_client_only_its_own_jobs(client):
    mine = {submit(client, ALICE).get_json()["id"] for _ in range(2)}
    theirs = submit(client, BOB).get_json()["id"]
    listed = {job["id"] for job in client.get("/api/jobs", headers=as_(ALICE)).get_json()["jobs"]}
    assert listed == mine
    everything = {job["id"] for job in client.get("/api/jobs", headers=as_(ADMIN)).get_json()["jobs"]}
    assert everything == mine | {theirs}
