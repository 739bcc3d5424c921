"""`flask settings`: the effective settings, or `--example` for the `.env.example` text."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from webapp.infra.config import SETTINGS
from webapp.infra.envfile import env_example, env_value

# Settings whose values are credentials: shown as set or unset, never printed.
SECRET_SETTINGS = frozenset(
    {"SECRET_KEY", "API_KEYS", "ADMIN_API_KEYS", "RQ_DASHBOARD_PASSWORD", "REDIS_SENTINEL_PASSWORD", "WEBHOOK_SECRETS"}
)


@click.command("settings", help="Print the effective settings (credentials masked), or --example for .env.example.")
@with_appcontext
@click.option("--example", is_flag=True, help="Print every setting with its default, as .env.example holds them.")
def settings_command(example: bool) -> None:
    if example:
        click.echo(env_example(), nl=False)
        return
    for setting in SETTINGS:
        value = current_app.config.get(setting.name)
        shown = ("(set)" if value else "(unset)") if setting.name in SECRET_SETTINGS else env_value(value)
        click.echo(f"{setting.name}={shown}")
