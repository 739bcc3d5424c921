"""lib/clock.lua: the claim's clock, when Redis takes it, reads exactly as the worker's Python writes it."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from rq.utils import utcformat

from webapp.infra.clock import iso
from webapp.store.scripts import LUA_DIR

CLOCK = (LUA_DIR / "lib" / "clock.lua").read_text()


def texts_in_lua(redis_conn, instants: list[tuple[int, int]]) -> list[list[bytes]]:
    script = (
        CLOCK
        + """
local out = {}
for i = 1, #ARGV, 2 do
  local unix, rq, api = clock_texts(tonumber(ARGV[i]), tonumber(ARGV[i + 1]))
  out[#out + 1] = {unix, rq, api}
end
return out
"""
    )
    flat = [value for instant in instants for value in instant]
    return redis_conn.eval(script, 0, *flat)


def texts_in_python(seconds: int, micros: int) -> list[bytes]:
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
    return [f"{seconds}.{micros:06d}".encode(), utcformat(moment).encode(), iso(moment).encode()]


def test_every_form_of_an_instant_matches_python_across_calendar_edges(redis_conn):
    edges = [
        (0, 0),  # the epoch
        (951_782_399, 999_999),  # 2000-02-28 23:59:59.999999, a leap year divisible by 400
        (951_782_400, 0),  # 2000-02-29
        (951_868_800, 1),  # 2000-03-01
        (4_107_542_399, 500_000),  # 2100-02-28: divisible by 100, not a leap year
        (4_107_542_400, 999),  # 2100-03-01
        (1_709_164_800, 123_456),  # 2024-02-29
        (1_735_689_599, 999_999),  # 2024-12-31 23:59:59.999999
        (1_735_689_600, 0),  # 2025-01-01
        (4_102_444_800, 1_000),  # 2100-01-01
    ]
    rng = random.Random(16)
    instants = edges + [(rng.randrange(0, 7_258_118_400), rng.randrange(0, 1_000_000)) for _ in range(2000)]
    for instant, got in zip(instants, texts_in_lua(redis_conn, instants), strict=True):
        assert got == texts_in_python(*instant), instant


def test_redis_clock_is_now_by_the_servers_time(redis_conn):
    script = CLOCK + "\nlocal unix, rq, api = redis_clock()\nreturn {unix, rq, api}"
    before = time.time()
    unix, rq, api = redis_conn.eval(script, 0)
    after = time.time()
    seconds, micros = (int(part) for part in unix.split(b"."))
    assert before - 1 <= seconds + micros / 1e6 <= after + 1  # the same machine's clock
    assert [unix, rq, api] == texts_in_python(seconds, micros)
