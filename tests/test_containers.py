"""The container recipe agrees with the Procfile and with RELIABILITY.md.

No container engine runs in `make test`; these tests read the Dockerfile and compose.yaml:
the services run exactly the Procfile's commands, the image installs requirements.txt
alone (then the service's own wheel without dependencies), runs as a non-root user, checks
/healthz, and stops with SIGTERM and a grace longer than the service's own graceful timeouts.
`make image` builds and runs the image where an engine is available (README).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from webapp.infra.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {role: shlex.split(command) for role, command in (line.split(": ", 1) for line in lines if line.strip())}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_services_run_the_procfile_commands(compose):
    services = compose["services"]
    for role, command in procfile().items():
        assert services[role]["command"] == command, f"compose service {role} does not run the Procfile's {role}"


def test_the_image_runs_the_web_by_default_as_pid_1():
    cmd = [rest for word, rest in final_stage() if word == "CMD"]
    assert len(cmd) == 1 and json.loads(cmd[0]) == procfile()["web"], "CMD (exec form) must be the Procfile's web"


def test_the_image_installs_the_production_requirements_alone():
    runs = [rest for word, rest in dockerfile_instructions() if word == "RUN"]
    installs = [shlex.split(run) for run in runs if "pip install" in run]
    requirement_files = [words[words.index("-r") + 1] for words in installs if "-r" in words]
    assert [Path(name).name for name in requirement_files] == ["requirements.txt"]
    others = [words for words in installs if "-r" not in words]
    assert others and all("--no-deps" in words for words in others), "the service's wheel must add no dependency"
    copied = " ".join(rest for word, rest in dockerfile_instructions() if word == "COPY")
    assert "requirements-dev" not in copied and "tests" not in copied.split()


def test_the_image_runs_as_a_non_root_user_and_checks_healthz():
    stage = final_stage()
    users = [rest for word, rest in stage if word == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    health = [rest for word, rest in stage if word == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0]


def _seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m)", str(text))
    assert match, f"unreadable duration {text!r}"
    return float(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_stop_signal_and_grace_fit_the_graceful_shutdown(compose):
    defaults = {setting.name: setting.default for setting in SETTINGS}
    stage = final_stage()
    assert [rest for word, rest in stage if word == "STOPSIGNAL"] == ["SIGTERM"]
    web_grace = int(re.search(r'WEB_GRACEFUL_TIMEOUT", "(\d+)"', (ROOT / "gunicorn.conf.py").read_text()).group(1))
    for role in procfile():
        service = compose["services"][role]
        assert service.get("stop_signal", "SIGTERM") == "SIGTERM"
        grace = _seconds(service["stop_grace_period"])
        # RELIABILITY.md: the platform's SIGKILL must come after the service's own grace + 5 s.
        assert grace >= defaults["WORKER_SHUTDOWN_GRACE"] + 5 and grace >= web_grace + 5


def test_redis_is_durable_and_never_evicts_and_the_workers_scale(compose):
    services = compose["services"]
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert set(compose["volumes"]) >= {volume.split(":")[0] for volume in redis["volumes"]}
    for role in procfile():
        assert services[role]["environment"]["REDIS_URL"].startswith("redis://redis:")
        assert services[role]["depends_on"]["redis"]["condition"] == "service_healthy"
    # `--scale worker=4` needs a worker without a fixed name or host port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]


def test_the_build_context_leaves_out_the_venv_and_secrets():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    assert {".venv", ".git", ".env", "var"} <= ignored
