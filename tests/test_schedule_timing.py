"""Tick arithmetic: cron in time zones across DST as cron users expect, intervals, misfires."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from webapp.infra.errors import ValidationFailed
from webapp.service.schedule_timing import Timing, decide, parse_cron, parse_timezone

PARIS = ZoneInfo("Europe/Paris")


def ms(*parts, zone=UTC) -> int:
    return int(datetime(*parts, tzinfo=zone).timestamp() * 1000)


def local(moment_ms: int, zone=PARIS) -> str:
    return datetime.fromtimestamp(moment_ms / 1000, zone).strftime("%Y-%m-%d %H:%M %Z")


def ticks(timing: Timing, start_ms: int, count: int) -> list[str]:
    found, moment = [], start_ms
    for _ in range(count):
        moment = timing.next_after(moment)
        found.append(local(moment, ZoneInfo(timing.timezone)))
    return found


def test_cron_in_a_time_zone_fires_at_local_time():
    daily = Timing(cron="0 2 * * *", timezone="Europe/Paris")
    assert ticks(daily, ms(2026, 1, 10, 12), 2) == ["2026-01-11 02:00 CET", "2026-01-12 02:00 CET"]
    assert daily.next_after(ms(2026, 1, 10, 12)) == ms(2026, 1, 11, 1)  # 02:00 CET is 01:00 UTC


def test_spring_forward_runs_a_skipped_time_right_after_the_jump():
    # 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST; there is no 02:30 that day.
    daily = Timing(cron="30 2 * * *", timezone="Europe/Paris")
    assert ticks(daily, ms(2026, 3, 28, 12), 2) == ["2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST"]
    every_half_hour = Timing(cron="*/30 * * * *", timezone="Europe/Paris")
    assert ticks(every_half_hour, ms(2026, 3, 29, 1, 0, zone=PARIS), 3) == [
        "2026-03-29 01:30 CET",
        "2026-03-29 03:00 CEST",
        "2026-03-29 03:30 CEST",
    ]


def test_fall_back_runs_a_fixed_time_once_and_wildcards_in_both_passes():
    # 2026-10-25 in Paris: 03:00 CEST falls back to 02:00 CET; 02:00-02:59 happens twice.
    daily = Timing(cron="30 2 * * *", timezone="Europe/Paris")
    assert ticks(daily, ms(2026, 10, 24, 12), 2) == ["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"]
    every_half_hour = Timing(cron="*/30 * * * *", timezone="Europe/Paris")
    assert ticks(every_half_hour, ms(2026, 10, 25, 1, 45, zone=PARIS), 5) == [
        "2026-10-25 02:00 CEST",
        "2026-10-25 02:30 CEST",
        "2026-10-25 02:00 CET",
        "2026-10-25 02:30 CET",
        "2026-10-25 03:00 CET",
    ]
    hourly = Timing(cron="0 * * * *", timezone="Europe/Paris")
    assert ticks(hourly, ms(2026, 10, 25, 1, 30, zone=PARIS), 3) == [
        "2026-10-25 02:00 CEST",
        "2026-10-25 02:00 CET",
        "2026-10-25 03:00 CET",
    ]


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("61 * * * *", "not a cron expression this service takes"),
        ("0 2 * *", "has 4 field(s); a cron expression has 5"),
        ("0 0 2 * * *", "has 6 field(s)"),
        ("0 2 * * mon-blah", "not a cron expression this service takes"),
        ("  0  2 * *  1-5 ", "5 fields one space apart"),
        ("0 0 L * *", "not a cron expression this service takes"),  # croniter's extensions are not taken
        ("", "has 0 field(s)"),
    ],
)
def test_a_bad_cron_expression_says_what_is_wrong(expression, says):
    with pytest.raises(ValidationFailed) as caught:
        parse_cron(expression)
    assert says in caught.value.message and caught.value.details[0]["argument"] == "cron"


def test_macros_are_expanded_and_an_impossible_date_never_fires():
    assert parse_cron("@daily") == "0 0 * * *"
    assert parse_cron("0 2 * * MON-fri") == "0 2 * * MON-fri"
    # As cron itself: February 31st is taken, and the schedule never runs.
    assert Timing(cron=parse_cron("0 0 31 2 *")).first_tick(ms(2026, 1, 1)) is None


@pytest.mark.parametrize("name", ["Mars/Base", "", "../etc/passwd", "/etc/localtime", "Europe/Paris "])
def test_an_unknown_time_zone_is_refused(name):
    with pytest.raises(ValidationFailed, match="unknown time zone"):
        parse_timezone(name)


GRACE = 60_000


def test_an_on_time_or_slightly_late_tick_runs_and_the_next_follows_it():
    every_minute = Timing(interval=60)
    due = ms(2026, 5, 1, 12)
    assert decide(every_minute, due, due, due + 5, "skip", GRACE).action == "run"
    late = decide(every_minute, due, due, due + 30_000, "skip", GRACE)
    assert (late.action, late.due, late.next_due) == ("run", due, due + 60_000)


def test_a_superseded_tick_is_missed_even_within_grace():
    every_second = Timing(interval=1)
    due = ms(2026, 5, 1, 12)
    decision = decide(every_second, due, due, due + 1_200, "run_once", GRACE)
    # the next tick (due + 1 s) is already due: this one is caught up, that one runs on time next
    assert (decision.action, decision.due, decision.missed, decision.next_due) == ("catch_up", due, 1, due + 1000)
    assert decide(every_second, due + 1000, due + 1000, due + 1_200, "run_once", GRACE).action == "run"


def test_after_an_outage_run_once_makes_one_catch_up_run_never_a_burst():
    every_second = Timing(interval=1)
    due = ms(2026, 5, 1, 12)
    now = due + 3_600_000 + 300  # an hour later
    decision = decide(every_second, due, due, now, "run_once", GRACE)
    assert decision.action == "catch_up" and decision.missed == 3600
    assert decision.due == due + 3_599_000 and decision.next_due == due + 3_600_000
    following = decide(every_second, decision.next_due, decision.next_due, now, "run_once", GRACE)
    assert following.action == "run"  # the current tick: 2 runs in all, not 3601


def test_after_an_outage_skip_makes_no_run_and_resumes_at_the_current_tick():
    nightly = Timing(cron="0 2 * * *", timezone="Europe/Paris")
    due = nightly.next_after(ms(2026, 5, 1))
    now = due + 3 * 86_400_000 + 600_000  # three nights and ten minutes later
    decision = decide(nightly, due, due, now, "skip", GRACE)
    assert (decision.action, decision.missed) == ("skip", 4)
    assert decision.next_due == nightly.next_after(now)
    caught = decide(nightly, due, due, now, "run_once", GRACE)
    assert (caught.action, caught.missed, caught.due) == ("catch_up", 4, due + 3 * 86_400_000)


def test_jitter_moves_the_lateness_reference_to_the_run_time():
    hourly = Timing(interval=3600)
    due = ms(2026, 5, 1, 12)
    run_at = due + 600_000  # jittered by 10 minutes
    assert decide(hourly, due, run_at, run_at + 1000, "skip", GRACE).action == "run"
