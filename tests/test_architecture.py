"""The architecture, checked: import rules between the layers, key names and Lua in one place
each, and every Redis connection made by the one client factory.

The rules (README, "Architecture"):
- `jobs/` (the job functions) imports nothing from `webapp`;
- `webapp.infra` imports no other layer; `infra`, `store` and `service` import no Flask and no
  Prometheus client; `store` imports only `infra`; `service` only `infra` and `store`;
- `web`, `cli` and `worker` never import each other;
- nothing in `webapp` imports `bench` or `tests`.
A failure names the file, the import and the rule it breaks.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.servers import start_web, start_worker
from webapp.store import keys

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("infra", "store", "service", "web", "cli", "worker")
# What each layer may import from webapp (besides itself).
MAY_IMPORT = {
    "infra": set(),
    "store": {"infra"},
    "service": {"infra", "store"},
    "web": {"infra", "store", "service"},
    "cli": {"infra", "store", "service"},
    "worker": {"infra", "store", "service"},
    "launcher": {"infra"},
    "factory": {"infra", "service", "web", "cli"},
    # the installed console scripts: the app factory and the worker's entry, side by side
    "console": {"worker"},
}
NO_FLASK = {"infra", "store", "service", "launcher"}
NO_PROMETHEUS = {"infra", "store", "service", "cli", "worker", "launcher"}


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def layer_of(path: Path) -> str:
    parts = path.relative_to(ROOT / "webapp").parts
    if parts[0] in LAYERS:
        return parts[0]
    return {"__init__.py": "factory", "launcher.py": "launcher", "console.py": "console"}[parts[0]]


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an `import` or `from ... import` names, with its line (lazy imports too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            # `from webapp import cli, web` names layers as attributes
            if node.module == "webapp":
                found += [(node.lineno, f"webapp.{alias.name}") for alias in node.names]
    return found


def violations(path: Path, source: str, layer: str) -> list[str]:
    """The import rules `source` (the file at `path`, in `layer`) breaks."""
    broken = []
    where = path.relative_to(ROOT)
    for line, module in imported_modules(ast.parse(source)):
        top = module.split(".")[0]
        if top in ("bench", "tests"):
            broken.append(f"{where}:{line} imports {module}: webapp never imports bench/ or tests/")
        if layer == "jobs":
            if top == "webapp":
                broken.append(f"{where}:{line} imports {module}: jobs/ imports nothing from webapp")
            continue
        if top == "flask" and layer in NO_FLASK:
            broken.append(f"{where}:{line} imports {module}: the {layer} layer knows no Flask")
        if top == "prometheus_client" and layer in NO_PROMETHEUS:
            broken.append(f"{where}:{line} imports {module}: only the web serves Prometheus metrics")
        if top == "webapp" and "." in module:
            target = module.split(".")[1]
            if target in LAYERS and target != layer and target not in MAY_IMPORT[layer]:
                broken.append(
                    f"{where}:{line} imports {module}: {layer} may import only "
                    f"{', '.join(sorted(MAY_IMPORT[layer])) or 'no other layer'}"
                )
    return broken


def test_every_module_keeps_the_import_rules():
    broken = []
    for path in python_files("webapp"):
        broken += violations(path, path.read_text(), layer_of(path))
    for path in python_files("jobs"):
        broken += violations(path, path.read_text(), "jobs")
    assert not broken, "import rules broken:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("layer", "source", "rule"),
    [
        ("store", "from flask import g", "knows no Flask"),
        ("service", "from webapp.web.auth import caller", "service may import only infra, store"),
        ("web", "import webapp.worker.supervisor", "web may import only"),
        ("worker", "from webapp.cli.jobs import jobs_group", "worker may import only"),
        ("infra", "from webapp.store import keys", "infra may import only no other layer"),
        ("store", "def f():\n    from prometheus_client import Counter", "only the web serves Prometheus"),
        ("factory", "from bench.routes import bp", "never imports bench/ or tests/"),
        ("jobs", "from webapp.store import keys", "jobs/ imports nothing from webapp"),
    ],
)
def test_the_checker_catches_each_kind_of_violation(layer, source, rule):
    path = ROOT / "webapp" / "example.py"
    found = violations(path, source, layer)
    assert found and rule in found[0], found


def string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals in code (f-string parts included), docstrings left out."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


KEYS_MODULE = ROOT / "webapp" / "store" / "keys.py"
KEY_LITERAL = re.compile(r"(^|[^a-z_])(rq|jobsvc):")


def test_redis_key_names_are_spelled_only_in_the_keys_module():
    spelled = []
    for path in python_files("webapp", "jobs"):
        if path == KEYS_MODULE:
            continue
        for line, text in string_constants(ast.parse(path.read_text())):
            if KEY_LITERAL.search(text):
                spelled.append(f"{path.relative_to(ROOT)}:{line}: {text[:60]!r}")
    assert not spelled, "key names outside webapp/store/keys.py:\n" + "\n".join(spelled)


def test_lua_lives_only_in_lua_files():
    inline = []
    for path in python_files("webapp"):
        for line, text in string_constants(ast.parse(path.read_text())):
            if "redis.call(" in text or "redis.pcall(" in text:
                inline.append(f"{path.relative_to(ROOT)}:{line}")
    assert not inline, "Lua in Python strings (move it to webapp/store/lua/):\n" + "\n".join(inline)


FACTORY_MODULE = ROOT / "webapp" / "infra" / "redis.py"
# Ways to open a Redis connection without the factory.
CONNECTING_CALLS = {
    "Redis",
    "StrictRedis",
    "ConnectionPool",
    "BlockingConnectionPool",
    "SentinelConnectionPool",
    "Sentinel",
    "Connection",
    "SSLConnection",
    "UnixDomainSocketConnection",
    "from_url",
    "connection_class",
}


def connecting_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in CONNECTING_CALLS:
                found.append((node.lineno, name))
    return found


def test_no_module_opens_a_redis_connection_except_the_factory():
    opened = []
    for path in python_files("webapp"):
        if path == FACTORY_MODULE:
            continue
        calls = connecting_calls(ast.parse(path.read_text()))
        opened += [f"{path.relative_to(ROOT)}:{line}: {name}(...)" for line, name in calls]
    assert not opened, "connections made outside webapp/infra/redis.py:\n" + "\n".join(opened)


def test_every_connection_of_a_running_stack_comes_from_the_factory(redis_server, redis_conn):
    """Walk what actually connects: web (API, SSE hub and readers, dashboard), worker.py (its
    supervisor, workers, scheduler, reaper). The factory names every client it makes (and RQ
    renames a worker's own connection after the worker); any other name, or none, means a
    connection was made some other way."""
    import httpx

    from tests.sse import read_events

    web, base = start_web(redis_server.url, WEB_CONCURRENCY="1")
    worker = start_worker(redis_server.url)
    try:
        submitted = httpx.post(base + "/api/jobs", json={"name": "add", "args": [1, 2]}, timeout=5).json()
        events = read_events(f"{base}/api/jobs/{submitted['id']}/events", until="finished", timeout=20)
        assert events[-1]["event"] == "finished"
        assert httpx.get(base + "/rq/", auth=("admin", "test-password"), timeout=5).status_code == 200
        redis_conn.client_setname("the-test")
        workers = {member.decode().removeprefix(keys.WORKER_PREFIX) for member in redis_conn.smembers(keys.WORKERS)}
        clients = redis_conn.client_list()
        names = {client["name"].split(":")[0] for client in clients}
        strangers = [client for client in clients if not client["name"].startswith("jobsvc-")
                     and client["name"] not in workers and client["name"] != "the-test"]  # fmt: skip
        assert not strangers, f"connections not made by the factory: {strangers}"
        assert names >= {"jobsvc-app", "jobsvc-sse-hub", "jobsvc-sse-read", "jobsvc-worker", "jobsvc-scheduler"}
        assert workers and workers <= names, (workers, names)
    finally:
        worker.stop()
        web.stop()
