"""When a schedule's ticks fall, and what to do with ticks that were missed. No Redis, no clock.

Ticks are nominal due times in milliseconds since the epoch. A cron schedule's ticks come from
croniter (5 fields, in the schedule's IANA time zone); an interval schedule's are its previous
tick plus the interval. Everything here is a pure function of its arguments, so the ticker,
the API and the tests (with any "now" they like) compute the same ticks.

Daylight saving time, as cron users expect it (Vixie/Debian cron's rule):
- spring forward: a tick inside the skipped hour runs right after the jump (02:30 -> 03:00);
- fall back: a fixed-time expression (no `*` in its minute and hour fields, e.g. `30 2 * * *`)
  runs once, at the first 02:30; expressions with a wildcard there (`*/15 * * * *`,
  `0 * * * *`) follow the clock and run in both passes of the repeated hour.
croniter does the first and the wildcard case; the fixed-time fall-back repeat is dropped here.

Misfires (`decide`): a tick is *missed* when it is more than `grace` late, or when the tick
after it is already due too (a newer tick supersedes it). Missed ticks are never run one by
one: with `run_once` they make one catch-up run, with `skip` none. So after any outage a
schedule makes at most one catch-up run plus its current tick, never a burst.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from croniter.croniter import CroniterError

from webapp.infra.errors import ValidationFailed

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
HORIZON_YEARS = 5  # an expression that never fires within this never runs (e.g. `0 0 31 2 *`)
MAX_COUNTED = 10_000  # missed cron ticks counted one by one at most (intervals are counted exactly)
MAX_INTERVAL = 366 * 86400


def _any_case(word: str) -> str:
    return "".join(f"[{letter.upper()}{letter.lower()}]" for letter in word)


def _field(value: str) -> str:
    item = rf"(?:\*|{value}(?:-{value})?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item})*"


_MONTHS = "|".join(_any_case(month) for month in "jan feb mar apr may jun jul aug sep oct nov dec".split())
_DAYS = "|".join(_any_case(day) for day in "sun mon tue wed thu fri sat".split())
_FIELD_VALUES = (
    r"[0-5]?[0-9]",  # minute
    r"(?:[01]?[0-9]|2[0-3])",  # hour
    r"(?:0?[1-9]|[12][0-9]|3[01])",  # day of month
    rf"(?:0?[1-9]|1[0-2]|{_MONTHS})",  # month
    rf"(?:[0-7]|{_DAYS})",  # day of week (0 and 7: Sunday)
)
# Standard cron, exactly what a schedule takes (the API documents this pattern): 5 fields of
# values, ranges, lists and steps, one space apart, or a macro. croniter's extensions (L, W, #,
# seconds) are not taken. tests/test_schedule_contract.py checks croniter accepts all of it.
CRON_PATTERN = rf"^(?:@(?:{'|'.join(MACROS).replace('@', '')})|{' '.join(_field(value) for value in _FIELD_VALUES)})$"


@functools.cache
def time_zones() -> tuple[str, ...]:
    """Every IANA time zone this server knows (the system's and the tzdata package's)."""
    return tuple(sorted(available_timezones()))


def invalid(argument: str, message: str, kind: str = "value_error") -> ValidationFailed:
    return ValidationFailed(
        f"{argument}: {message}", details=[{"argument": argument, "message": message, "type": kind}]
    )


def parse_cron(expression: str) -> str:
    """The expression as 5 fields (macros expanded), or a 422 that says what is wrong."""
    text = MACROS.get(expression, expression)
    fields = text.split()
    if not re.fullmatch(CRON_PATTERN, expression):
        if len(fields) == 5:
            raise invalid(
                "cron",
                f"{expression!r} is not a cron expression this service takes: 5 fields one space apart, each "
                "*, a number, a range (1-5), a list (1,3) or a step (*/15); months and week days also by name",
                "cron_invalid",
            )
        raise invalid(
            "cron",
            f"{expression!r} has {len(fields)} field(s); a cron expression has 5: "
            f"{' '.join(FIELD_NAMES)} (e.g. '0 2 * * *' for 02:00 every day), or @hourly, @daily, @weekly, ...",
            "cron_fields",
        )
    croniter(text)  # the pattern admits only what croniter takes (tests/test_schedule_contract.py)
    return text


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (one of `time_zones()`, as the API documents), or a 422."""
    try:
        if name not in time_zones():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise invalid(
            "timezone", f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris'", "timezone"
        ) from None


def _fixed_time(cron: str) -> bool:
    minute, hour = cron.split(" ")[:2]
    return "*" not in minute and "*" not in hour


def _repeats_a_wall_time(moment: datetime, zone: ZoneInfo) -> bool:
    """True for the second occurrence of a wall-clock time that DST's fall-back repeats."""
    wall = moment.replace(tzinfo=None)
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset() and moment.astimezone(UTC) == second.astimezone(UTC)


@dataclass(frozen=True)
class Timing:
    """A schedule's ticks: `cron` (5 fields) in `timezone`, or every `interval` seconds."""

    cron: str | None = None
    timezone: str = "UTC"
    interval: int | None = None

    def __post_init__(self):
        if (self.cron is None) == (self.interval is None):
            raise ValueError("a Timing has a cron expression or an interval")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, moment_ms: int) -> int | None:
        """The first tick strictly after `moment_ms`; None when there is none (`0 0 31 2 *`, as cron
        itself takes it: such a schedule never runs)."""
        if self.interval is not None:
            return moment_ms + self.interval * 1000
        zone = self.zone
        start = datetime.fromtimestamp(moment_ms / 1000, zone)
        iterator = croniter(self.cron, start)
        fixed = _fixed_time(self.cron)
        horizon = start.year + HORIZON_YEARS
        while True:
            try:
                found = iterator.get_next(datetime)
            except CroniterError:
                found = None
            if found is None or found.year > horizon:
                return None
            if not (fixed and _repeats_a_wall_time(found, zone)):
                return int(found.timestamp() * 1000)

    def first_tick(self, now_ms: int) -> int | None:
        """The first tick of a schedule created (or re-timed, or resumed) at `now_ms`."""
        return self.next_after(now_ms)

    def describe(self) -> str:
        if self.interval is not None:
            return f"every {self.interval} s"
        return f"cron {self.cron} ({self.timezone})"


@dataclass(frozen=True)
class Decision:
    """What a ticker does with a schedule whose stored tick `due` has come.

    action: `run` (the tick, on time), `catch_up` (one run for `missed` missed ticks, the
    latest of which is `due`), `skip` (no run for `missed` missed ticks, the first is `due`).
    `next_due` is the tick to store after this one.
    """

    action: str
    due: int
    missed: int
    next_due: int | None  # None: the expression fires no more


def _missed(timing: Timing, tick: int | None, run_at: int, now_ms: int, grace_ms: int) -> bool:
    if tick is None or tick > now_ms:
        return False
    following = timing.next_after(tick)
    return now_ms - run_at > grace_ms or (following is not None and following <= now_ms)


def decide(timing: Timing, due: int, run_at: int, now_ms: int, policy: str, grace_ms: int) -> Decision:
    """The transition for stored tick `due` (run at `run_at`, with jitter) at `now_ms`."""
    if not _missed(timing, due, run_at, now_ms, grace_ms):
        return Decision("run", due, 0, timing.next_after(due))
    if timing.interval is not None:
        step = timing.interval * 1000
        # the first tick that is not missed: within grace of now and not superseded
        first_kept = due + step * max(1, math.ceil((now_ms - grace_ms - due) / step))
        while first_kept + step <= now_ms:
            first_kept += step
        missed = (first_kept - due) // step
        latest_missed = first_kept - step
    else:
        missed, latest_missed, tick = 0, due, due
        while _missed(timing, tick, tick if missed else run_at, now_ms, grace_ms):
            missed += 1
            latest_missed = tick
            if missed >= MAX_COUNTED:  # a very long outage: jump close to now
                tick = timing.next_after(now_ms - grace_ms - 1)
                while tick is not None and _missed(timing, tick, tick, now_ms, grace_ms):
                    latest_missed, tick = tick, timing.next_after(tick)
                break
            tick = timing.next_after(tick)
        first_kept = tick
    if policy == "skip":
        return Decision("skip", due, missed, first_kept)
    return Decision("catch_up", latest_missed, missed, first_kept)
