"""The Lua scripts, loaded from `webapp/store/lua/*.lua` by one loader with one substitution scheme.

- A script names the function libraries it needs (`lua/lib/*.lua`) on a first line
  `-- uses: events, limits`; the loader puts each library in front of it once, the libraries'
  own `-- uses:` first. So the event append (lib/events.lua) is written once and used by the
  event script, the submit script and STEP alike.
- `{{NAME}}` in a script is replaced by a key prefix from `webapp.store.keys.LUA_NAMES`, a
  constant from `LUA_CONSTANTS` below, or a value the caller passes (STEP's argument table,
  the catalog's job names). An unknown name is an error when the script is loaded, never a
  silent empty string in Redis.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from webapp.store import keys, states, stats

LUA_DIR = Path(__file__).resolve().parent / "lua"
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
_USES = re.compile(r"\A--\s*uses:\s*([a-z_, ]+)\n")

DURATION_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "300")


def _bucket_chain() -> str:
    """Lua that sets `field` to the histogram bucket of `took` (seconds): comparisons with
    constants, where a table of the bounds would be built and read on every event."""
    tests = [f"if took <= {bound} then field = '{bound}'" for bound in DURATION_BUCKETS]
    return " else".join(tests) + " else field = '+Inf' end"


LUA_CONSTANTS = {
    # `event == 'a' or event == 'b' ...`: true for an event that ends a job
    "IS_TERMINAL_EVENT": " or ".join(f"event == '{event}'" for event in sorted(states.TERMINAL)),
    "DURATION_BUCKET_OF_TOOK": _bucket_chain(),
    "STATS_RETENTION": str(stats.RETENTION),
}


def _text(name: str, folder: Path) -> str:
    return (folder / f"{name}.lua").read_text()


def _with_libraries(name: str, folder: Path, seen: set[str]) -> list[str]:
    """The script's text, after the text of every library it uses (each once)."""
    text = _text(name, folder)
    parts: list[str] = []
    uses = _USES.match(text)
    if uses:
        for library in (part.strip() for part in uses.group(1).split(",") if part.strip()):
            if library not in seen:
                seen.add(library)
                parts += _with_libraries(library, LUA_DIR / "lib", seen)
    parts.append(text)
    return parts


def source(name: str, **values: str) -> str:
    """The full text of `lua/<name>.lua`: its libraries, then itself, placeholders filled."""
    text = "\n".join(_with_libraries(name, LUA_DIR, set()))
    names = {**keys.LUA_NAMES, **LUA_CONSTANTS, **values}

    def fill(match: re.Match) -> str:
        placeholder = match.group(1)
        if placeholder not in names:
            raise KeyError(f"lua/{name}.lua uses {{{{{placeholder}}}}}, which nothing provides")
        return names[placeholder]

    return _PLACEHOLDER.sub(fill, text)


def script(name: str, **values: str) -> Script:
    """A redis-py Script for `lua/<name>.lua` (called with `client=`: a connection or pipeline)."""
    if values:
        return Script(None, source(name, **values).encode())
    return _shared(name)


@cache
def _shared(name: str) -> Script:
    return Script(None, source(name).encode())


def call(connection: Redis, script: Script, keys: Sequence, args: Sequence) -> Any:
    """Run `script` on `connection` (a client, not a pipeline) in one round trip: EVALSHA as a
    plain command, EVAL when the server does not know the script yet (first use, or after a
    restart or SCRIPT FLUSH). redis-py's `Script.__call__` and `evalsha` add a wrapper that
    inspects the arguments on every call: 6–7 % of an API request's CPU."""
    try:
        return connection.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return connection.execute_command("EVAL", script.script, len(keys), *keys, *args)
