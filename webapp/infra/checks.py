"""Start-up checks of the Redis the service runs on: can it keep the jobs it accepts?

Problems found (each one can lose accepted jobs):
- no persistence at all (AOF off and no RDB `save` points): a restart empties every queue;
- an evicting `maxmemory-policy` (anything but `noeviction`): Redis deletes job keys under
  memory pressure;
- a version older than 6.2 (RQ 3 needs LMOVE/BLMOVE and other 6.2 commands).

They are logged loudly; with REQUIRE_DURABLE_REDIS=1 (production) the process refuses to
start instead. Managed Redis that hides CONFIG is handled: what cannot be read is said so.
"""

from __future__ import annotations

import logging
import os

from redis import Redis
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger("webapp.infra.checks")

# Set once this process (or the parent it was forked from) has checked: forked workers and
# every app a process builds do not repeat the warnings.
_checked = False


class UnsafeRedis(SystemExit):
    """Raised (as a clean exit with a message) when production mode refuses the Redis."""


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def problems(connection: Redis) -> list[str]:
    """What is unsafe about this Redis for a job queue, as sentences (empty when all is well)."""
    info = connection.info()
    found = []
    version = str(info.get("redis_version", "0"))
    if _version(version) < (6, 2, 0):
        found.append(f"Redis {version} is older than 6.2, which RQ 3 needs")
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        found.append(f"maxmemory-policy is {policy!r}: Redis may evict queued jobs; set it to 'noeviction'")
    aof = int(info.get("aof_enabled", 0) or 0) == 1
    try:
        save = connection.config_get("save").get("save", "")
    except ResponseError:
        save = None  # CONFIG is disabled (managed Redis): RDB settings unknown
    if not aof:
        if save is None:
            found.append("AOF is off and the RDB save settings cannot be read (CONFIG is disabled)")
        elif not str(save).strip():
            found.append(
                "persistence is off (appendonly no, no save points): a Redis restart loses every queued job; "
                "enable appendonly yes"
            )
    return found


def check(connection: Redis, config, role: str) -> list[str]:
    """Log what is unsafe; in production mode (REQUIRE_DURABLE_REDIS) refuse to start.

    An unreachable Redis is not a refusal: the web answers 503 and workers wait for it.
    """
    global _checked
    try:
        found = problems(connection)
    except RedisError as exc:
        log.warning("%s: could not check Redis at start-up (%s); checks skipped", role, exc)
        return []
    _checked = True
    for problem in found:
        log.warning("%s: UNSAFE REDIS: %s", role, problem)
    if found and config.get("REQUIRE_DURABLE_REDIS"):
        raise UnsafeRedis(
            f"{role}: refusing to start because REQUIRE_DURABLE_REDIS is set and Redis is unsafe: " + "; ".join(found)
        )
    return found


def check_once(connection: Redis, config, role: str) -> list[str]:
    """`check`, unless this process (or the one it was forked from) already did."""
    return [] if _checked else check(connection, config, role)


def init_app(app) -> None:
    """Check once per web server process (gunicorn, as the Procfile runs it); an app built
    for a `flask` command or a test is not a server and is not checked."""
    if _checked or not os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
        return
    try:
        check(app.extensions["redis"], app.config, "web")
    except UnsafeRedis as exc:
        log.critical("%s", exc)
        raise SystemExit(4) from None  # gunicorn's "app failed to load": the whole server stops
