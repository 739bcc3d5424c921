"""`requirements.txt` alone runs the Procfile, as on a new machine or a platform build.

The test suite's own venv also holds the dev tools, which once hid a production dependency
(gunicorn's gevent worker imports `packaging`, which only the dev tools pulled in). So this
test builds a second, clean virtualenv with nothing but `requirements.txt`, then runs the
Procfile's `web` and `worker` commands from it against a private Redis and submits a job.
pip's cache is used, as a platform's build cache would be.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import venv
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, RedisServer, ServiceProcess, free_port, service_env

REQUIREMENTS = ROOT / "requirements.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)


def procfile() -> dict[str, list[str]]:
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and not line.startswith("#"):
            commands[name.strip()] = shlex.split(command)
    return commands


def loads_from(pid: int, prefix: Path) -> bool:
    """Whether the process has a file from `prefix` mapped (its interpreter's C extensions)."""
    return str(prefix) in Path(f"/proc/{pid}/maps").read_text()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Progress:
    """Lines on the terminal while pytest captures output: the install takes a while."""

    def __init__(self, capsys):
        self.capsys = capsys
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        with self.capsys.disabled():
            print(f"\n  production install [{time.monotonic() - self.started:5.1f} s] {message}", end="", flush=True)


def install_requirements(target: Path, say: Progress) -> None:
    """A venv without pip (nothing but the pins), filled by this interpreter's pip."""
    venv.EnvBuilder(with_pip=False, clear=True).create(target)
    command = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(target / "bin" / "python"),
        "install",
        "--no-compile",
        "--progress-bar",
        "off",
        "--disable-pip-version-check",
        "-r",
        str(REQUIREMENTS),
    ]
    say(f"pip install -r requirements.txt into {target} (uses pip's cache) ...")
    output = []
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as pip:
        for line in pip.stdout:
            output.append(line)
            if line.startswith("Collecting "):
                say("  " + line.split()[1])
    assert pip.returncode == 0, "pip install -r requirements.txt failed:\n" + "".join(output[-40:])


def installed(python: Path) -> dict[str, str]:
    listing = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; [print(d.name, d.version) for d in m.distributions()]"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {canonical(name): version for name, version in (line.split() for line in listing.splitlines())}


@pytest.mark.timeout(600)
def test_requirements_txt_alone_runs_the_procfile_web_and_worker(tmp_path, capsys):
    say = Progress(capsys)
    target = tmp_path / "venv"
    say("creating a clean virtualenv with only requirements.txt")
    install_requirements(target, say)
    pinned = {canonical(name): version for name, version in PIN.findall(REQUIREMENTS.read_text())}
    assert installed(target / "bin" / "python") == pinned  # every pin, and nothing unpinned came along
    say(f"installed the {len(pinned)} pinned packages")

    commands = procfile()
    assert set(commands) == {"web", "worker"}
    redis = RedisServer().start()
    port = free_port()
    env = service_env(
        redis.url,
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        WEB_GRACEFUL_TIMEOUT="2",
        # The Procfile's `gunicorn` and `python` are the clean venv's; nothing else is importable.
        PATH=f"{target / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(target),
        PYTHONNOUSERSITE="1",
    )
    env.pop("PYTHONPATH", None)
    base = f"http://127.0.0.1:{port}"
    say(f"starting the Procfile's web ({shlex.join(commands['web'])}) and worker ({shlex.join(commands['worker'])})")
    web = ServiceProcess(commands["web"], env, "prod-web")
    worker = ServiceProcess(commands["worker"], env, "prod-worker")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                pass
            assert web.process.poll() is None, "the web process exited:\n" + web.output()
            assert time.monotonic() < deadline, "the web process did not answer in 30 s:\n" + web.output()
            time.sleep(0.1)
        assert health.status_code == 200, health.text
        assert health.json() == {"status": "ok", "redis": "ok"}
        # /api/docs serves Swagger UI's files from the checkout, not from a dev-only package.
        assert httpx.get(f"{base}/api/docs").status_code == 200
        assert httpx.get(f"{base}/api/docs/swagger/swagger-ui-bundle.js").status_code == 200

        response = httpx.post(
            f"{base}/api/jobs", content=b'{"name": "add", "args": [2, 3]}', headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 202, response.text
        job_url = f"{base}/api/jobs/{response.json()['id']}"
        deadline = time.monotonic() + 30
        while (body := httpx.get(job_url).json())["status"] not in ("finished", "failed"):
            assert worker.process.poll() is None, "the worker exited:\n" + worker.output()
            assert time.monotonic() < deadline, f"the job did not end in 30 s: {body}\n" + worker.output()
            time.sleep(0.05)
        assert (body["status"], body["result"]) == ("finished", 5), (body, worker.output())
        assert loads_from(web.pid, target) and loads_from(worker.pid, target)
        say("GET /healthz 200, and an add job finished with 5")
    finally:
        worker_rc = worker.stop()
        web_rc = web.stop()
        redis.cleanup()
    # Both processes came from the clean venv and stopped cleanly on SIGTERM.
    assert (web_rc, worker_rc) == (0, 0), (web.output(), worker.output())
    say("done\n")
