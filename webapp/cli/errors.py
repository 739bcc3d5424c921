"""A `flask` command's Redis trouble as a one-line error that says what to do, not a traceback.

Applied to every command under `flask` at once (`explain_redis_errors(app.cli)`, last in
webapp/cli/__init__.py), so a new command gets it without a line of its own."""

from __future__ import annotations

import functools

import click
from flask import current_app, has_app_context
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from webapp.infra.redis import REDIS_UNAVAILABLE, unavailable_reason


def explain_redis_errors(group: click.Group) -> None:
    """Wrap every command under `group` (recursively)."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            explain_redis_errors(command)
        else:
            _explained(command)


def _explained(command: click.Command) -> None:
    run = command.callback
    if run is None or getattr(run, "redis_explained", False):
        return

    @functools.wraps(run)
    def explained(*args, **kwargs):
        try:
            return run(*args, **kwargs)
        except RedisError as exc:
            raise click.ClickException(redis_trouble(exc)) from None

    explained.redis_explained = True
    command.callback = explained


def redis_trouble(exc: RedisError) -> str:
    """What went wrong with Redis, and what to do about it."""
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        where = current_app.extensions["redis_factory"].describe() if has_app_context() else "REDIS_URL"
        return f"cannot reach Redis at {where} ({exc}). Start it, or point REDIS_URL at the one the service uses."
    if isinstance(exc, REDIS_UNAVAILABLE):
        return f"{unavailable_reason(exc)}. Try again once it takes writes."
    return f"Redis refused the command: {exc}"
