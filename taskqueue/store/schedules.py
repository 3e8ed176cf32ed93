"""Schedules: their definitions (create, define from code, update, read,
pause, resume, delete, trigger), their firing ledger, and the statements
the firing loop runs (the due ones, firing a slot)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from taskqueue.models import (
    SCHEDULE_FIELDS,
    CatchUp,
    Overlap,
    Schedule,
    ScheduleDefinition,
    ScheduleFire,
    Status,
    Task,
)
from taskqueue.store._sql import Executor, query
from taskqueue.store.tasks import _task


class ScheduleRow(ScheduleDefinition, kw_only=True):
    """A resolved definition, ready to store."""

    next_run_at: datetime  # its first slot: used when it is new or its timing changed


class DueSchedule(msgspec.Struct, kw_only=True, gc=False):
    """What the firing loop needs to plan one due schedule's slots."""

    name: str
    cron: str | None
    every_seconds: int | None
    timezone: str
    catch_up: CatchUp
    overlap: Overlap
    next_run_at: datetime
    now: datetime  # the database's clock (or the fixed time a test passed)


class Fired(msgspec.Struct, kw_only=True, gc=False):
    """What one firing statement did."""

    advanced: bool  # False: another worker fired these slots, or the schedule changed
    fired: list[datetime]
    skipped: list[datetime]  # overlap = 'skip' with the previous task still live
    already_recorded: int  # slots the ledger held already (next_run_at was moved back)


def _schedule(record: asyncpg.Record) -> Schedule:
    fields = {field: record[field] for field in SCHEDULE_FIELDS}
    fields["catch_up"] = CatchUp(fields["catch_up"])
    fields["overlap"] = Overlap(fields["overlap"])
    return Schedule(**fields)


def _schedule_params(row: ScheduleRow) -> tuple[Any, ...]:
    return (
        row.name,
        row.cron,
        row.every_seconds,
        row.timezone,
        row.type,
        row.payload,
        row.queue,
        row.priority,
        row.max_retries,
        row.timeout_seconds,
        row.catch_up.value,
        row.overlap.value,
        row.next_run_at,
    )


async def schedule_now(conn: Executor, now: datetime | None = None) -> datetime:
    """The database's clock (``now`` itself when given)."""
    value: datetime = await conn.fetchval(query("schedule_now"), now)
    return value


async def insert_schedule(conn: Executor, row: ScheduleRow) -> Schedule | None:
    """The new schedule, or None when the name is taken."""
    record = await conn.fetchrow(query("insert_schedule"), *_schedule_params(row))
    return None if record is None else _schedule(record)


async def define_schedule(conn: Executor, row: ScheduleRow) -> Schedule | None:
    """Add or update a schedule defined in code, keeping its pause (and its
    next slot while the timing is unchanged); None when it already matched."""
    record = await conn.fetchrow(query("define_schedule"), *_schedule_params(row))
    return None if record is None else _schedule(record)


async def update_schedule(conn: Executor, row: ScheduleRow) -> Schedule | None:
    """The changed schedule, or None when it is missing or defined in code."""
    record = await conn.fetchrow(query("update_schedule"), *_schedule_params(row))
    return None if record is None else _schedule(record)


async def get_schedule(conn: Executor, name: str) -> Schedule | None:
    record = await conn.fetchrow(query("get_schedule"), name)
    return None if record is None else _schedule(record)


async def list_schedules(
    conn: Executor, *, after: str | None = None, limit: int = 100
) -> list[Schedule]:
    records = await conn.fetch(query("list_schedules"), after, limit)
    return [_schedule(r) for r in records]


async def delete_schedule(conn: Executor, name: str) -> bool:
    return await conn.fetchval(query("delete_schedule"), name) is not None


async def pause_schedule(conn: Executor, name: str) -> Schedule | None:
    """The paused schedule, or None when it is missing or already paused."""
    record = await conn.fetchrow(query("pause_schedule"), name)
    return None if record is None else _schedule(record)


async def resume_schedule(conn: Executor, name: str, next_run_at: datetime) -> Schedule | None:
    """The resumed schedule, or None when it is missing or not paused."""
    record = await conn.fetchrow(query("resume_schedule"), name, next_run_at)
    return None if record is None else _schedule(record)


async def trigger_schedule(conn: Executor, name: str, task_id: uuid.UUID) -> Task | None:
    """The task enqueued by hand, or None when there is no such schedule."""
    record = await conn.fetchrow(query("trigger_schedule"), name, task_id)
    return None if record is None else _task(record)


async def recent_schedule_fires(
    conn: Executor, name: str, *, limit: int = 10
) -> list[ScheduleFire]:
    records = await conn.fetch(query("recent_schedule_fires"), name, limit)
    return [
        ScheduleFire(
            id=r["id"],
            slot=r["slot"],
            at=r["at"],
            outcome=r["outcome"],
            task_id=r["task_id"],
            task_status=None if r["task_status"] is None else Status(r["task_status"]),
            detail=r["detail"],
        )
        for r in records
    ]


async def due_schedules(
    conn: Executor, *, now: datetime | None = None, limit: int = 100
) -> list[DueSchedule]:
    """Unpaused schedules with a slot due at ``now`` (the database's clock
    when None), oldest first."""
    records = await conn.fetch(query("due_schedules"), now, limit)
    return [
        DueSchedule(
            name=r["name"],
            cron=r["cron"],
            every_seconds=r["every_seconds"],
            timezone=r["timezone"],
            catch_up=CatchUp(r["catch_up"]),
            overlap=Overlap(r["overlap"]),
            next_run_at=r["next_run_at"],
            now=r["now"],
        )
        for r in records
    ]


async def fire_schedule(
    conn: Executor,
    name: str,
    *,
    expected: datetime,
    next_run_at: datetime,
    slots: Sequence[datetime],
    task_ids: Sequence[uuid.UUID],
    missed: Any = None,
    worker_id: str | None = None,
) -> Fired:
    """Fire ``slots`` of a schedule whose next_run_at is still ``expected``
    (see fire_schedule.sql); ``missed`` (JSON) describes slots left unfired."""
    record = await conn.fetchrow(
        query("fire_schedule"),
        name,
        expected,
        next_run_at,
        list(slots),
        list(task_ids),
        missed,
        worker_id,
    )
    assert record is not None  # the statement always returns one row
    return Fired(
        advanced=record["advanced"] > 0,
        fired=list(record["fired"]),
        skipped=list(record["skipped"]),
        already_recorded=record["already_recorded"],
    )
