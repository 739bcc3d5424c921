"""What sign-in sessions keep in Redis: the shared signing secret and the sessions signed out.

A session itself lives in its signed cookie (webapp/web/sessions.py); Redis holds only
- the secret that signs them when `SECRET_KEY` is not configured: random, created once by
  whichever web process asks first (SET NX), so every process and machine on this Redis signs
  and checks with the same one, and sessions survive a web restart;
- the ids of sessions ended by a sign-out, each until the session would have expired anyway,
  so a copy of a signed-out cookie is refused too.
"""

from __future__ import annotations

import secrets

from redis import Redis

from webapp.store import keys


def shared_secret(connection: Redis) -> bytes:
    """The sessions' signing secret, created on first use (one round trip)."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.set(keys.SESSION_SECRET, secrets.token_hex(32), nx=True)
        pipe.get(keys.SESSION_SECRET)
        _, value = pipe.execute()
    return value if isinstance(value, bytes) else str(value).encode()


def forget_secret(connection: Redis) -> None:
    """Drop the shared secret: every session signed with it ends (a new one is made on next use)."""
    connection.delete(keys.SESSION_SECRET)


def end_session(connection: Redis, session_id: str, remaining: int) -> None:
    """Record a signed-out session for as long as its cookie could still be presented."""
    connection.set(keys.session_ended(session_id), 1, ex=max(1, remaining))


def has_ended(connection: Redis, session_id: str) -> bool:
    return bool(connection.exists(keys.session_ended(session_id)))
