"""`make run`'s launcher on a machine where nothing answers at REDIS_URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from redis.exceptions import RedisError

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


def launch(tmp_path: Path, workers: int, redis_port: int, **settings: str) -> tuple[subprocess.Popen, str]:
    """`make run`'s launcher for a Redis on redis_port (its embedded one when nothing answers
    there), in its own session as a terminal would run it, once its web answers; its output goes
    to tmp_path/run.log."""
    port = free_port()
    env = dict(
        os.environ,
        PORT=str(port),
        WORKERS=str(workers),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        JOBSVC_VAR_DIR=str(tmp_path),
        **settings,
    )
    env.pop("RQ_DASHBOARD_PASSWORD", None)
    with (tmp_path / "run.log").open("w") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "webapp.launcher"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return launcher, base
        except httpx.HTTPError:
            pass
        if launcher.poll() is not None or time.monotonic() > deadline:
            stop_launcher(launcher)
            raise AssertionError((tmp_path / "run.log").read_text())
        time.sleep(0.2)


def stop_launcher(launcher: subprocess.Popen) -> float:
    """Ctrl-C as a terminal sends it (to the whole process group); how long the stop took."""
    os.killpg(launcher.pid, signal.SIGINT)
    stopped_at = time.monotonic()
    try:
        launcher.wait(15)
    except subprocess.TimeoutExpired:
        launcher.kill()
    return time.monotonic() - stopped_at


def finished(base: str, job_id: str, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/jobs/{job_id}", timeout=2).json()["status"] == "finished":
                return True
        except (httpx.HTTPError, ValueError, KeyError):
            pass  # a 503 (no "status") while Redis is away
        time.sleep(0.05)
    return False


def test_make_run_starts_embedded_redis_the_web_and_workers_and_ctrl_c_stops_all(tmp_path):
    launcher, base = launch(tmp_path, workers=2, redis_port=free_port())
    try:
        password = (tmp_path / "dashboard-password").read_text().strip()
        output = (tmp_path / "run.log").read_text()
        assert f"{base}/rq" in output and password in output and "embedded" in output

        job_id = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [2, 3]}).json()["id"]
        assert finished(base, job_id)
        assert httpx.get(f"{base}/rq/").status_code == 401
        assert httpx.get(f"{base}/rq/", auth=("admin", password)).status_code == 200
        assert (tmp_path / "redis").is_dir() and any((tmp_path / "redis").rglob("*.aof*"))

        started = descendants(launcher.pid)
        assert len(started) >= 5  # honcho, gunicorn (+2), worker supervisors (+children), valkey
    finally:
        took = stop_launcher(launcher)
    assert took < 10, took
    assert launcher.returncode == 0  # a stop that was asked for: make prints no "Error 130"
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


def test_make_run_restarts_its_embedded_redis_when_it_dies(tmp_path):
    """The server make run started is killed under the running stack: it comes back on the same
    port with its data, the web and the worker carry on, and Ctrl-C still stops everything."""
    from redis import Redis

    redis_port = free_port()
    launcher, base = launch(tmp_path, workers=1, redis_port=redis_port)
    connection = Redis(port=redis_port, socket_timeout=2)
    try:
        before = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [2, 3]}).json()["id"]
        assert finished(base, before)
        time.sleep(1.2)  # appendfsync everysec: the finished job reaches the append-only file
        first_pid = connection.info("server")["process_id"]
        os.kill(first_pid, signal.SIGKILL)

        deadline = time.monotonic() + 15
        while True:
            try:
                second_pid = connection.info("server")["process_id"]
                break
            except (OSError, RedisError):
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()
                time.sleep(0.1)
        assert second_pid != first_pid and second_pid in descendants(launcher.pid)
        output = (tmp_path / "run.log").read_text()
        assert "the embedded Redis exited (killed by signal 9); restarting it" in output, output

        after = httpx.post(f"{base}/api/jobs", json={"name": "add", "args": [4, 5]}, timeout=5)
        assert after.status_code == 202, after.text
        assert finished(base, after.json()["id"], within=20), (tmp_path / "run.log").read_text()
        assert httpx.get(f"{base}/api/jobs/{before}").json()["result"] == 5  # kept by the append-only file
    finally:
        connection.close()
        took = stop_launcher(launcher)
    assert took < 10, took
    time.sleep(0.3)
    assert not alive(second_pid), (tmp_path / "run.log").read_text()


def test_ctrl_c_while_redis_is_unreachable_stops_everything_before_honcho_kills(tmp_path):
    """Redis (not make run's: a server of the test's own, which nobody restarts) goes away
    while a job runs; Ctrl-C then stops the stack within the workers' grace and half a second,
    not by honcho's SIGKILL 5 s in, and the supervisor says once that it could not hand back jobs."""
    from tests.servers import RedisServer

    server = RedisServer().start()
    try:
        # a 1 s grace (make run's is 3 s) keeps the test clear of honcho's 5 s on a loaded machine
        launcher, base = launch(tmp_path, workers=1, redis_port=server.port, WORKER_SHUTDOWN_GRACE="1")
        try:
            job = httpx.post(f"{base}/api/jobs", json={"name": "sleep", "args": [30]}).json()["id"]
            deadline = time.monotonic() + 10
            while httpx.get(f"{base}/api/jobs/{job}").json()["status"] != "started":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            started = descendants(launcher.pid)
            server.kill()
            time.sleep(1)
        finally:
            took = stop_launcher(launcher)
        output = (tmp_path / "run.log").read_text()
        # the grace for the running job, then half a second for the bookkeeping
        assert "sending SIGKILL" not in output, (took, output)
        assert took < 10, (took, output)
        assert output.count("recovering the jobs of dead workers: ") == 1, output
        assert "the reaper of another worker.py will recover" in output, output
        time.sleep(0.3)
        assert [pid for pid in started if alive(pid)] == [], output
    finally:
        server.cleanup()


def test_make_run_on_a_port_already_taken_says_so_before_starting_anything(tmp_path):
    """gunicorn alone would retry for 5 s, print `Connection in use` and take the stack down."""
    import socket

    redis_port = free_port()
    env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", JOBSVC_VAR_DIR=str(tmp_path))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        began = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "webapp.launcher"], cwd=ROOT, env=dict(env, PORT=str(port)),
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert time.monotonic() - began < 10
    assert f"cannot listen on 127.0.0.1:{port}" in run.stdout and f"make run PORT={port + 1}" in run.stdout
    assert "embedded" not in run.stdout  # nothing was started
    assert not (tmp_path / "redis").exists()

    run = subprocess.run([sys.executable, "-m", "webapp.launcher"], cwd=ROOT, env=dict(env, PORT="http"),
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert run.returncode == 2 and "PORT='http' is not a port number" in run.stdout, run.stdout + run.stderr
    run = subprocess.run([sys.executable, "-m", "webapp.launcher"], cwd=ROOT, env=dict(env, WORKERS="two"),
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert run.returncode == 2 and "WORKERS='two' is not a number" in run.stdout, run.stdout + run.stderr
