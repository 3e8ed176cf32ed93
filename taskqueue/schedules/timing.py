"""When schedules fire, computed without I/O: cron and interval timings,
schedule names, and which of a schedule's slots are due and which catch-up
leaves unfired (``plan_firing``).

A *slot* is a moment a schedule fires, in UTC. Every computation here starts
from a moment it is given (the database's clock, read by the caller).

Cron expressions are evaluated by cronsim, which follows Debian cron across
daylight-saving changes: a job at a fixed minute and hour that falls in the
hour skipped in spring runs at the first valid time after the gap (02:30 on
the spring-forward day in Europe/Berlin fires at 03:00), and one that falls
in the hour repeated in autumn runs once, in the first pass; expressions with
a wildcard minute or hour follow real time (``0 * * * *`` fires every real
hour, 23 or 25 a day). A leading seconds field keeps those rules: the minutes
are found as for five fields, then each gets its seconds."""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Protocol

from cronsim import CronSim

from taskqueue.errors import InvalidSchedule
from taskqueue.limits import (
    MAX_CRON_LENGTH,
    MAX_EVERY_SECONDS,
    MAX_SCHEDULE_NAME_LENGTH,
    SCHEDULE_NAME_PATTERN,
)
from taskqueue.models import CatchUp

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
NAME_PATTERN = SCHEDULE_NAME_PATTERN
MAX_NAME_LENGTH = MAX_SCHEDULE_NAME_LENGTH

# A slot less than this overdue is on time: a worker's check, a restart or a
# deploy delays slots by that much, and they fire whatever catch_up says.
# Older ones are late, and catch_up decides what becomes of them.
LATE_AFTER = timedelta(seconds=60)
# catch_up = "all" fires at most this many late slots in one go (the newest);
# the older ones are recorded as missed.
CATCH_UP_CAP = 100
# Late slots are counted one by one up to this many; beyond it the report of
# missed slots gives a lower bound rather than walk millions of seconds.
COUNT_LIMIT = 10_000
# How many due schedules one check fires before checking again.
DUE_BATCH = 100
# next_run_at of an expression that has no slot in the next 50 years.
NEVER = datetime(9999, 12, 31, tzinfo=UTC)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


class Timing(Protocol):
    """When a schedule fires."""

    def after(self, moment: datetime) -> Iterator[datetime]:
        """Slots later than ``moment``, oldest first, in UTC."""
        ...

    def before(self, moment: datetime) -> Iterator[datetime]:
        """Slots earlier than ``moment``, newest first, in UTC."""
        ...


@dataclass(frozen=True, slots=True)
class Interval:
    """Every ``seconds`` seconds, counted from the Unix epoch: the same slots
    whenever (and wherever) the schedule was created."""

    seconds: int

    def after(self, moment: datetime) -> Iterator[datetime]:
        step = self.seconds * 1_000_000
        index = _micros(moment) // step + 1
        while True:
            yield _EPOCH + timedelta(microseconds=index * step)
            index += 1

    def before(self, moment: datetime) -> Iterator[datetime]:
        step = self.seconds * 1_000_000
        index = (_micros(moment) - 1) // step
        while index >= 0:
            yield _EPOCH + timedelta(microseconds=index * step)
            index -= 1


@dataclass(frozen=True, slots=True)
class Cron:
    """A five-field expression evaluated in ``zone``, each matching minute
    firing at ``seconds`` past it."""

    minutes: str
    seconds: tuple[int, ...]
    zone: zoneinfo.ZoneInfo

    def after(self, moment: datetime) -> Iterator[datetime]:
        moment = moment.astimezone(UTC)
        # Minute arithmetic in UTC: local wall-clock arithmetic would step
        # into (and past) the hour a DST change skips.
        start = moment.replace(second=0, microsecond=0) - timedelta(seconds=1)
        for minute in CronSim(self.minutes, start.astimezone(self.zone)):
            base = minute.astimezone(UTC)
            for second in self.seconds:
                slot = base + timedelta(seconds=second)
                if slot > moment:
                    yield slot

    def before(self, moment: datetime) -> Iterator[datetime]:
        moment = moment.astimezone(UTC)
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for minute in CronSim(self.minutes, start.astimezone(self.zone), reverse=True):
            base = minute.astimezone(UTC)
            for second in reversed(self.seconds):
                slot = base + timedelta(seconds=second)
                if slot < moment:
                    yield slot


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _TICK


@functools.cache
def _known_zones() -> frozenset[str]:
    # "localtime" names whatever zone each host is set to, and "Factory" is a
    # placeholder zone: neither means one clock on every worker.
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "Factory"}


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``; raises InvalidSchedule("timezone") if unknown."""
    # Checked against the list first: ZoneInfo() alone accepts some paths
    # and raises a different error for each way a name can be wrong.
    if name != "UTC" and name not in _known_zones():
        raise InvalidSchedule("timezone", f"unknown time zone {name[:100]!r} (IANA names)")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSchedule("timezone", f"unknown time zone {name[:100]!r}") from None


def parse_cron(expression: str, zone: zoneinfo.ZoneInfo) -> Cron:
    """5 fields, 6 with leading seconds, or an @alias; raises InvalidSchedule("cron")."""
    text = expression.strip()
    if len(text) > MAX_CRON_LENGTH:
        raise InvalidSchedule("cron", f"at most {MAX_CRON_LENGTH} characters")
    if text.startswith("@"):
        minutes = ALIASES.get(text.lower())
        if minutes is None:
            raise InvalidSchedule(
                "cron", f"unknown alias {text[:50]!r}; known: {', '.join(ALIASES)}"
            )
        seconds_field = "0"
    else:
        fields = text.split()
        if len(fields) not in (5, 6):
            raise InvalidSchedule(
                "cron",
                "5 fields (minute hour day-of-month month day-of-week), 6 with leading"
                f" seconds, or an alias ({', '.join(ALIASES)}); got {len(fields)}",
            )
        seconds_field = fields[0] if len(fields) == 6 else "0"
        minutes = " ".join(fields[-5:])
    try:
        CronSim(f"{seconds_field} {minutes}", datetime(2000, 1, 1))
        seconds = _seconds_of(seconds_field)
    except Exception as exc:  # the parser's errors for untrusted text are not all CronSimError
        raise InvalidSchedule("cron", f"{exc or 'invalid'} in {text[:100]!r}") from None
    return Cron(minutes=minutes, seconds=seconds, zone=zone)


def _seconds_of(field: str) -> tuple[int, ...]:
    """The seconds a seconds field matches, from the parser itself."""
    found: list[int] = []
    for moment in CronSim(f"{field} * * * * *", datetime(1999, 12, 31, 23, 59, 59)):
        if moment.minute != 0:
            break
        found.append(moment.second)
    return tuple(found)


def parse_timing(cron: str | None, every_seconds: int | None, timezone: str) -> Timing:
    """The timing of a definition; raises InvalidSchedule naming the field."""
    zone = zone_of(timezone)
    if cron is not None and every_seconds is not None:
        raise InvalidSchedule("every_seconds", "give cron or every_seconds, not both")
    if every_seconds is not None:
        if isinstance(every_seconds, bool) or not 1 <= every_seconds <= MAX_EVERY_SECONDS:
            raise InvalidSchedule(
                "every_seconds", f"a whole number of seconds from 1 to {MAX_EVERY_SECONDS}"
            )
        return Interval(every_seconds)
    if cron is None:
        raise InvalidSchedule("cron", "give cron or every_seconds")
    return parse_cron(cron, zone)


def validate_name(name: str) -> str:
    if not could_exist(name):
        raise InvalidSchedule(
            "name",
            f"1 to {MAX_NAME_LENGTH} characters: letters, digits and _ . : -,"
            " starting with a letter or digit",
        )
    return name


def could_exist(name: str) -> bool:
    """Whether a schedule may have this name."""
    return 0 < len(name) <= MAX_NAME_LENGTH and re.match(NAME_PATTERN, name) is not None


def first_after(timing: Timing, moment: datetime) -> datetime:
    """The first slot after ``moment``; raises InvalidSchedule("cron") when
    the expression has none in the next 50 years (``0 0 30 2 *`` and the like)."""
    slot = next(iter(timing.after(moment)), None)
    if slot is None:
        raise InvalidSchedule("cron", "never fires (no matching time in the next 50 years)")
    return slot


def upcoming(timing: Timing, moment: datetime, count: int) -> list[datetime]:
    return list(islice(timing.after(moment), count))


@dataclass(frozen=True, slots=True)
class Plan:
    """What one firing does: the slots to fire (oldest first), a report of
    the late slots catch_up leaves unfired, and the next slot after now."""

    slots: list[datetime]
    missed: dict[str, Any] | None
    next_run_at: datetime


def plan_firing(
    timing: Timing,
    *,
    due: datetime,
    now: datetime,
    catch_up: CatchUp,
    cap: int = CATCH_UP_CAP,
) -> Plan:
    """Which slots from ``due`` (the oldest unfired one) up to ``now`` fire.

    On-time slots (less than LATE_AFTER old) always fire. Of the late ones,
    ``none`` fires none, ``latest`` only the newest and only when no slot is
    on time, ``all`` the newest ``cap``; the rest are reported as missed."""
    boundary = now - LATE_AFTER
    # The newest late slots, one more than could fire, so that the newest
    # unfired one is known too.
    late: deque[datetime] = deque(maxlen=cap + 1)
    late_count = 0
    first_late: datetime | None = None
    exact = True
    if due < boundary:
        for slot in timing.after(due - _TICK):
            if slot >= boundary:
                break
            if first_late is None:
                first_late = slot
            late.append(slot)
            late_count += 1
            if late_count >= COUNT_LIMIT:
                exact = False
                late = deque(reversed(list(islice(timing.before(boundary), cap + 1))))
                break
    on_time: list[datetime] = []
    next_run_at = NEVER
    for slot in timing.after(max(due, boundary) - _TICK):
        if slot > now:
            next_run_at = slot
            break
        on_time.append(slot)

    newest = list(late)
    if catch_up is CatchUp.ALL:
        fire_late = newest[-cap:] if cap else []
    elif catch_up is CatchUp.LATEST and not on_time and newest:
        fire_late = newest[-1:]
    else:
        fire_late = []
    missed = None
    unfired = late_count - len(fire_late)
    if unfired > 0 and first_late is not None:
        last_unfired = newest[-len(fire_late) - 1]
        missed = {
            "catch_up": catch_up.value,
            "slots": unfired,
            "exact": exact,  # False: at least this many (too many to count)
            "first": first_late.isoformat(),
            "last": last_unfired.isoformat(),
        }
        if catch_up is CatchUp.ALL:
            missed["cap"] = cap
    return Plan(slots=fire_late + on_time, missed=missed, next_run_at=next_run_at)
