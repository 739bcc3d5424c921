"""schemathesis against a real gunicorn server, as a user would run it: every documented operation,
all checks (schema-valid requests accepted, invalid ones refused, statuses, headers and bodies as
documented, 405s with Allow, stateful sequences through the API's own links...), with the
repository's schemathesis.toml.

`SCHEMATHESIS_LIVE_EXAMPLES` sets the examples per operation (default 10 here; `st run` itself
defaults to 100: the figures of a full run are in the README).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import BIN, ROOT, start_web

EXAMPLES = os.environ.get("SCHEMATHESIS_LIVE_EXAMPLES", "10")


@pytest.mark.timeout(900)
def test_st_run_with_all_checks_finds_nothing_against_gunicorn(redis_server, redis_conn, tmp_path: Path):
    # Webhooks on (to a port nothing listens on: no worker runs here to deliver), so the webhook
    # option's documented URL pattern is fuzzed against the API's own check.
    web, base = start_web(redis_server.url, LOG_LEVEL="WARNING", WEBHOOK_ALLOWED_HOSTS="127.0.0.1,*.example.com",
                          WEBHOOK_SECRETS="*:fuzzing-secret-0123456789")  # fmt: skip
    try:
        command = [
            str(BIN / "st"),
            "run",
            f"{base}/api/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            EXAMPLES,
            "--seed",
            "7",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-30000:]
        assert "Coverage" in output and "Fuzzing" in output and "Stateful" in output, output[-3000:]
        sys.stdout.write(output[-1500:])
    finally:
        web.stop()
