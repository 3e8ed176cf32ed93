"""The one way a schedule is defined, in code (``registry.schedule``,
``registry.periodic``) or at run time (``tq.schedules.add``, the REST API):
a ``NewSchedule`` built and checked by ``define``."""

from __future__ import annotations

from enum import Enum
from typing import Any, TypedDict, TypeVar, Unpack

from taskqueue.errors import InvalidSchedule
from taskqueue.models import CatchUp, NewSchedule, Overlap
from taskqueue.schedules.timing import parse_timing, validate_name


class ScheduleFields(TypedDict, total=False):
    """What a definition may say besides its name, type and ``cron``.

    ``every_seconds`` instead of ``cron``; the zone ``cron`` is read in; the
    task settings default to the
    type's; ``catch_up`` says what becomes of slots missed while no worker
    ran; ``overlap`` whether a slot fires while the last one's task runs."""

    every_seconds: int | None
    timezone: str
    payload: Any
    queue: str | None
    priority: int | None
    max_retries: int | None
    timeout_seconds: float | None
    catch_up: CatchUp | str
    overlap: Overlap | str


def define(
    name: str, *, type: str, cron: str | None = None, **fields: Unpack[ScheduleFields]
) -> NewSchedule:
    """A checked definition of a schedule: ``cron`` (5 fields, 6 with
    leading seconds, or an @alias, in ``timezone``) or ``every_seconds``.
    The name, the timing and the choices are
    validated now (InvalidSchedule naming the field), so a mistake in code
    fails the import rather than a worker."""
    unknown = set(fields) - set(ScheduleFields.__annotations__)
    if unknown:
        raise InvalidSchedule(sorted(unknown)[0], "not a field of a schedule")
    validate_name(name)
    every_seconds = fields.get("every_seconds")
    timezone = fields.get("timezone", "UTC")
    parse_timing(cron, every_seconds, timezone)
    payload = fields.get("payload")
    return NewSchedule(
        name=name,
        type=type,
        cron=cron,
        every_seconds=every_seconds,
        timezone=timezone,
        payload={} if payload is None else payload,
        queue=fields.get("queue"),
        priority=fields.get("priority"),
        max_retries=fields.get("max_retries"),
        timeout_seconds=fields.get("timeout_seconds"),
        catch_up=choice(CatchUp, fields.get("catch_up", CatchUp.LATEST), "catch_up"),
        overlap=choice(Overlap, fields.get("overlap", Overlap.ALLOW), "overlap"),
    )


E = TypeVar("E", bound=Enum)


def choice(kind: type[E], value: E | str, field: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise InvalidSchedule(
            field, f"one of {', '.join(repr(k.value) for k in kind)}, not {str(value)[:50]!r}"
        ) from None
