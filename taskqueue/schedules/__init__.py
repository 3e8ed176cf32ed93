"""Recurring tasks, in one package: ``timing`` (when a schedule fires,
computed without I/O), ``definition`` (the one way a schedule is defined, in
code or at run time), ``firing`` (the caller of the leaderless firing
statement, run by every worker) and ``manager`` (``tq.schedules``: create,
read, change and delete them).

Cron expressions are evaluated by cronsim; see ``timing`` for how slots fall
across daylight-saving changes."""

from taskqueue.errors import InvalidSchedule, ScheduleConflict, ScheduleNotFound
from taskqueue.limits import MAX_CRON_LENGTH, MAX_EVERY_SECONDS
from taskqueue.schedules.definition import ScheduleFields, define
from taskqueue.schedules.firing import FireResult, fire_due
from taskqueue.schedules.timing import (
    ALIASES,
    CATCH_UP_CAP,
    COUNT_LIMIT,
    DUE_BATCH,
    LATE_AFTER,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    NEVER,
    Cron,
    Interval,
    Plan,
    Timing,
    could_exist,
    first_after,
    parse_cron,
    parse_timing,
    plan_firing,
    upcoming,
    validate_name,
    zone_of,
)

__all__ = [
    "ALIASES",
    "CATCH_UP_CAP",
    "COUNT_LIMIT",
    "DUE_BATCH",
    "LATE_AFTER",
    "MAX_CRON_LENGTH",
    "MAX_EVERY_SECONDS",
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "NEVER",
    "Cron",
    "FireResult",
    "Interval",
    "InvalidSchedule",
    "Plan",
    "ScheduleConflict",
    "ScheduleFields",
    "ScheduleNotFound",
    "Timing",
    "could_exist",
    "define",
    "fire_due",
    "first_after",
    "parse_cron",
    "parse_timing",
    "plan_firing",
    "upcoming",
    "validate_name",
    "zone_of",
]
