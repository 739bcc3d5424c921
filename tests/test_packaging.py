"""`pip install .` into a clean virtualenv runs the service: the Procfile's commands, started
from a folder holding only the deployment files (Procfile, gunicorn.conf.py, worker.py,
.flaskenv), serve the API, the pages and Swagger UI and run jobs, so everything they read
(Lua scripts, templates, static files) comes from the installed package, not this checkout.

The package is built from a copy of the files git knows (as a clean clone would be), with
the pins of requirements.txt as constraints.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from tests.servers import ROOT, ServiceProcess, free_port, service_env

DEPLOYMENT_FILES = ("Procfile", "gunicorn.conf.py", "worker.py", ".flaskenv")
pytestmark = pytest.mark.timeout(600)


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{shlex.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _checkout_copy(target: Path) -> Path:
    """The files git tracks (and new ones it does not ignore), as a fresh clone would have them."""
    listed = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _readme_client_example() -> str:
    """The five-line example of the README's "The Python client" section."""
    section = (ROOT / "README.md").read_text().split("### The Python client", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(example.strip().splitlines()) <= 6 and "wait(" in example
    return example


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    """A clean venv with `pip install -c requirements.txt .`, and the built wheel."""
    root = tmp_path_factory.mktemp("install")
    source = _checkout_copy(root / "source")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv])
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "--progress-bar", "off", "-c", source / "requirements.txt", source])
    _run([*pip, "wheel", "--no-deps", "-w", root / "wheel", source])
    deploy = root / "deploy"
    deploy.mkdir()
    for name in DEPLOYMENT_FILES:
        shutil.copy2(source / name, deploy / name)
    return {"venv": venv, "bin": venv / "bin", "deploy": deploy, "wheel": next((root / "wheel").glob("*.whl"))}


def test_the_wheel_carries_every_file_the_service_reads(install):
    tracked = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "webapp", "jobs"], cwd=ROOT)
    wanted = {name for name in tracked.stdout.split() if not name.endswith(".py")}
    packed = set(zipfile.ZipFile(install["wheel"]).namelist())
    assert wanted and not wanted - packed, f"missing from the wheel: {sorted(wanted - packed)}"
    metadata = next(name for name in packed if name.endswith("METADATA"))
    text = zipfile.ZipFile(install["wheel"]).read(metadata).decode()
    declared = {
        str(Requirement(line.split(": ", 1)[1])) for line in text.splitlines() if line.startswith("Requires-Dist:")
    }
    direct = [line.split("#")[0].strip() for line in (ROOT / "requirements.in").read_text().splitlines()]
    for requirement in filter(None, direct):
        assert str(Requirement(requirement)) in declared, f"{requirement} (requirements.in) is not a dependency"


def test_the_procfile_commands_run_the_installed_service(install, redis_server, redis_conn):
    env = service_env(redis_server.url, PORT=str(free_port()), HOST="127.0.0.1", WEB_CONCURRENCY="1")
    env["PATH"] = f"{install['bin']}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    procfile = dict(line.split(": ", 1) for line in (install["deploy"] / "Procfile").read_text().splitlines() if line)
    processes = {}
    try:
        for role, command in procfile.items():
            process = ServiceProcess(["bash", "-c", f"exec {command}"], env, f"installed-{role}", cwd=install["deploy"])
            processes[role] = process
        base = f"http://127.0.0.1:{env['PORT']}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, processes["web"].output()
            time.sleep(0.2)
        created = httpx.post(base + "/api/jobs", json={"name": "add", "args": [2, 3]}).json()
        deadline = time.monotonic() + 30
        while (job := httpx.get(base + created["url"]).json())["status"] != "finished":
            assert time.monotonic() < deadline, processes["worker"].output()
            time.sleep(0.1)
        assert job["result"] == 5
        for path in ("/", "/api/docs", "/static/app.css", "/api/docs/swagger/swagger-ui-bundle.js"):
            assert httpx.get(base + path).status_code == 200, path
        # The CLI: `flask` finds the app through .flaskenv; `jobsvc` needs nothing, from any folder.
        listed = _run(["flask", "jobs", "status", created["id"]], cwd=install["deploy"], env=env)
        assert "finished" in listed.stdout
        anywhere = _run(["jobsvc", "jobs", "status", created["id"]], cwd=install["venv"], env=env)
        assert "finished" in anywhere.stdout
        assert "--burst" in _run(["jobsvc-worker", "--help"], cwd=install["venv"], env=env).stdout
        # and none of it came from this checkout
        origin = _run(["python", "-c", "import webapp; print(webapp.__file__)"], cwd=install["deploy"], env=env)
        assert str(install["venv"]) in origin.stdout
        # The Python client installs on its own (httpx only) and the README's example runs.
        _run(["python", "-m", "pip", "install", "--progress-bar", "off", ROOT / "client"], cwd=install["venv"], env=env)
        example = _readme_client_example().replace("http://localhost:5000", base)
        assert _run(["python", "-c", example], cwd=install["venv"], env=env).stdout.strip() == "5"
        shown = _run(["python", "-m", "pip", "show", "jobsvc-client"], cwd=install["venv"], env=env).stdout
        assert "Requires: httpx\n" in shown
    finally:
        for process in processes.values():
            process.stop()


def test_no_local_state_is_tracked():
    """The virtualenv and the runtime folder are the machine's own: a tracked `.venv` (even a
    symlink) replaces a user's installed venv on the next checkout."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "--", ".venv", "var", ".schemathesis"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == []
