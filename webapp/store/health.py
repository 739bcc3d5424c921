"""Whether Redis takes writes: one conditional SET of a key that never exists, which writes
nothing, yet is refused as any write would be by a Redis that is full (maxmemory reached under
`noeviction`: OOM) or cannot save to disk (MISCONF). A PING answers in both cases."""

from __future__ import annotations

from redis import Redis

from webapp.store import keys


def probe_writes(connection: Redis) -> None:
    """Raise what a write would raise now (redis-py's exceptions); return when writes are taken."""
    connection.set(keys.WRITE_PROBE, "1", xx=True)
