"""`.env.example` lists every setting with its default, as generated from the settings table."""

from __future__ import annotations

from pathlib import Path

from webapp.infra import config
from webapp.infra.envfile import env_example

ROOT = Path(__file__).resolve().parent.parent


def _entries(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return dict(pairs)


def test_env_example_is_the_generated_one():
    written = (ROOT / ".env.example").read_text()
    assert written == env_example(), ".env.example is out of date: run `make env-example` and commit it"


def test_env_example_names_every_setting_once_and_reads_back_to_the_defaults():
    entries = _entries(env_example())
    assert list(entries) == [setting.name for setting in config.SETTINGS]
    # What the file says parses back to exactly the defaults (an empty value means "the default").
    assert config.from_environ(entries) == config.from_environ({})


def test_settings_command_prints_the_example_and_masks_credentials(app, runner):
    result = runner.invoke(args=["settings", "--example"])
    assert result.exit_code == 0 and result.output == env_example()
    app.config["API_KEYS"] = "alice:very-secret-key"
    shown = runner.invoke(args=["settings"]).output
    assert "API_KEYS=(set)" in shown and "very-secret-key" not in shown
    assert f"QUEUES={','.join(app.config['QUEUES'])}" in shown
