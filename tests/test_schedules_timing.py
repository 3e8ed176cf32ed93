"""taskqueue.schedules.timing: cron and interval timings and catch-up
planning, computed without I/O."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskqueue.models import CatchUp
from taskqueue.schedules import (
    CATCH_UP_CAP,
    InvalidSchedule,
    parse_timing,
    plan_firing,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# -- expressions -----------------------------------------------------------------


def test_five_and_six_fields_aliases_and_intervals() -> None:
    start = utc(2025, 1, 1, 0, 0, 0)

    def first(n: int, cron: str | None = None, every: int | None = None) -> list[datetime]:
        return list(islice(parse_timing(cron, every, "UTC").after(start), n))

    assert first(2, "*/15 * * * *") == [utc(2025, 1, 1, 0, 15), utc(2025, 1, 1, 0, 30)]
    assert first(3, "*/20 * * * * *") == [
        utc(2025, 1, 1, 0, 0, 20),
        utc(2025, 1, 1, 0, 0, 40),
        utc(2025, 1, 1, 0, 1, 0),
    ]
    assert first(2, "@hourly") == [utc(2025, 1, 1, 1), utc(2025, 1, 1, 2)]
    assert first(1, "@daily") == [utc(2025, 1, 2)]
    assert first(1, "@weekly") == [utc(2025, 1, 5)]  # the next Sunday
    assert first(1, "@monthly") == first(1, "@MONTHLY") == [utc(2025, 2, 1)]
    assert first(1, "@yearly") == first(1, "@annually") == [utc(2026, 1, 1)]
    assert first(1, "0 9 * * MON-FRI") == [utc(2025, 1, 1, 9)]
    # Intervals count from the Unix epoch: the same slots whenever they are created.
    assert first(2, every=3600) == [utc(2025, 1, 1, 1), utc(2025, 1, 1, 2)]
    assert first(2, every=7) == [utc(2025, 1, 1, 0, 0, 6), utc(2025, 1, 1, 0, 0, 13)]


@pytest.mark.parametrize(
    ("cron", "every_seconds", "timezone", "field", "says"),
    [
        ("61 * * * *", None, "UTC", "cron", "Bad minute"),
        ("* * *", None, "UTC", "cron", "5 fields"),
        ("* * * * * * *", None, "UTC", "cron", "got 7"),
        ("@fortnightly", None, "UTC", "cron", "unknown alias"),
        ("*/0 * * * *", None, "UTC", "cron", "Bad minute"),
        ("0 0 30 2 *", None, "UTC", "cron", "Bad day-of-month"),
        ("", None, "UTC", "cron", "5 fields"),
        (None, None, "UTC", "cron", "give cron or every_seconds"),
        ("* * * * *", 60, "UTC", "every_seconds", "not both"),
        (None, 0, "UTC", "every_seconds", "from 1"),
        (None, 400 * 86400, "UTC", "every_seconds", "from 1"),
        ("* * * * *", None, "Mars/Olympus", "timezone", "unknown time zone"),
        ("* * * * *", None, "../../etc/passwd", "timezone", "unknown time zone"),
        ("* * * * *", None, "America", "timezone", "unknown time zone"),
    ],
)
def test_invalid_definitions_name_the_field(
    cron: str | None, every_seconds: int | None, timezone: str, field: str, says: str
) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse_timing(cron, every_seconds, timezone)
    assert caught.value.field == field
    assert says in caught.value.message


@settings(max_examples=150, deadline=None)
@given(
    cron=st.sampled_from(
        [
            "30 2 * * *",
            "0 * * * *",
            "*/7 1-3 * * *",
            "15 30 2 * * *",
            "*/10 * * * * *",
            "0 3 * * SUN",
            "45 1 * 3,10,11 *",
        ]
    ),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe"]),
    moment=st.datetimes(
        min_value=datetime(2025, 3, 1), max_value=datetime(2025, 11, 30), timezones=st.just(UTC)
    ),
)
def test_walking_back_finds_the_slots_walking_forward_found(
    cron: str, zone: str, moment: datetime
) -> None:
    """Catch-up over long gaps walks back from now; it must meet exactly the
    slots the forward walk yields, DST changes included."""
    timing = parse_timing(cron, None, zone)
    forward = list(islice(timing.after(moment), 6))
    assert forward == sorted(set(forward))
    backward = list(islice(timing.before(forward[-1] + timedelta(microseconds=1)), 6))
    assert backward == forward[::-1]


# -- catch-up planning (pure) ------------------------------------------------------


def test_catch_up_cap_fires_the_newest_late_slots_and_reports_the_rest() -> None:
    every_minute = parse_timing("* * * * *", None, "UTC")
    plan = plan_firing(
        every_minute, due=utc(2025, 1, 1, 12), now=utc(2025, 1, 1, 14, 0, 30), catch_up=CatchUp.ALL
    )
    # 120 late slots (12:00-13:59), the cap fires the newest 100; 14:00 is on time.
    assert plan.slots[0] == utc(2025, 1, 1, 12, 20)
    assert plan.slots[-1] == utc(2025, 1, 1, 14, 0)
    assert len(plan.slots) == CATCH_UP_CAP + 1
    assert plan.missed == {
        "catch_up": "all",
        "cap": CATCH_UP_CAP,
        "slots": 20,
        "exact": True,
        "first": "2025-01-01T12:00:00+00:00",
        "last": "2025-01-01T12:19:00+00:00",
    }
    assert plan.next_run_at == utc(2025, 1, 1, 14, 1)


def test_a_gap_too_long_to_count_reports_a_lower_bound_quickly() -> None:
    every_second = parse_timing(None, 1, "UTC")
    started = time.perf_counter()
    plan = plan_firing(
        every_second, due=utc(2025, 1, 1), now=utc(2025, 2, 1), catch_up=CatchUp.LATEST
    )
    assert time.perf_counter() - started < 2
    # The last minute is on time and fires; a month of late seconds does not.
    assert (plan.slots[0], plan.slots[-1]) == (utc(2025, 1, 31, 23, 59), utc(2025, 2, 1))
    assert len(plan.slots) == 61
    assert plan.missed is not None
    assert (plan.missed["exact"], plan.missed["first"]) == (False, "2025-01-01T00:00:00+00:00")
    assert plan.missed["last"] == "2025-01-31T23:58:59+00:00"
    assert plan.next_run_at == utc(2025, 2, 1, 0, 0, 1)
