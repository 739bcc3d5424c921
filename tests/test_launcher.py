"""`make run`'s launcher on a machine where nothing answers at REDIS_URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import ROOT, free_port


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_make_run_starts_embedded_redis_the_web_and_workers_and_ctrl_c_stops_all(tmp_path):
    port, redis_port = free_port(), free_port()
    env = dict(
        os.environ,
        PORT=str(port),
        WORKERS="2",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        JOBSVC_VAR_DIR=str(tmp_path),
        RQ_DASHBOARD_PASSWORD="",
    )
    env.pop("RQ_DASHBOARD_PASSWORD")
    log = (tmp_path / "run.log").open("w+")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "webapp.launcher"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert launcher.poll() is None and time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.2)

        password = (tmp_path / "dashboard-password").read_text().strip()
        output = (tmp_path / "run.log").read_text()
        assert f"{base}/rq" in output and password in output and "embedded" in output

        job_id = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [2, 3]}).json()["id"]
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/api/jobs/{job_id}").json()["status"] != "finished":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.get(f"{base}/rq/").status_code == 401
        assert httpx.get(f"{base}/rq/", auth=("admin", password)).status_code == 200
        assert (tmp_path / "redis").is_dir() and any((tmp_path / "redis").rglob("*.aof*"))

        started = descendants(launcher.pid)
        assert len(started) >= 5  # honcho, gunicorn (+2), worker supervisors (+children), valkey
    finally:
        os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        stopped_at = time.monotonic()
        try:
            launcher.wait(15)
        except subprocess.TimeoutExpired:
            launcher.kill()
        log.close()
    took = time.monotonic() - stopped_at
    assert took < 10, took
    time.sleep(0.3)
    left = [pid for pid in started if alive(pid)]
    assert left == [], (left, (tmp_path / "run.log").read_text())


def test_embedded_server_keeps_queued_jobs_across_a_restart(tmp_path):
    from webapp import create_app
    from webapp.launcher import redis_answers, start_embedded_redis, stop_process

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    def started():
        process = start_embedded_redis(port, tmp_path / "redis")
        deadline = time.monotonic() + 10
        while not redis_answers(url, 0.2):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        return process

    server = started()
    try:
        app = create_app({"REDIS_URL": url, "TESTING": True})
        job_id = app.test_client().post("/api/jobs", json={"name": "add", "args": [2, 3]}).get_json()["id"]
        time.sleep(1.2)  # appendfsync everysec: let the append-only file reach the disk
    finally:
        stop_process(server, "embedded Redis", 5)
    server = started()
    try:
        app = create_app({"REDIS_URL": url, "TESTING": True})
        body = app.test_client().get(f"/api/jobs/{job_id}").get_json()
        assert body["status"] == "queued" and body["name"] == "add"
        assert app.extensions["redis"].lrange("rq:queue:default", 0, -1) == [job_id.encode()]
    finally:
        stop_process(server, "embedded Redis", 5)
