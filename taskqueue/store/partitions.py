"""The history's daily partitions: making them ahead of time, dropping whole
old days (event retention), and listing them. The work itself is done by
SECURITY DEFINER functions of migration 0008, so any worker may run it."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from taskqueue.store._sql import Executor, query


class EventPartition(msgspec.Struct, kw_only=True, frozen=True):
    """One partition of taskqueue.task_events. ``starts``/``ends`` bound its
    UTC day (both None for the default partition); ``rows`` is the planner's
    estimate for a day (None before it is first analyzed) and an exact count
    for the default partition."""

    name: str
    starts: datetime | None
    ends: datetime | None
    rows: int | None

    @property
    def is_default(self) -> bool:
        return self.starts is None


def _partition(r: asyncpg.Record) -> EventPartition:
    return EventPartition(
        name=r["partition_name"], starts=r["starts"], ends=r["ends"], rows=r["estimated_rows"]
    )


async def ensure_event_partitions(
    conn: Executor, days_ahead: int, *, now: datetime | None = None
) -> list[str]:
    """Make today's and the next ``days_ahead`` days' partitions where
    missing (and those the default partition needs); the names made."""
    records = await conn.fetch(query("ensure_event_partitions"), days_ahead, now)
    return [r["partition_name"] for r in records]


async def drop_event_partitions(conn: Executor, older_than: datetime) -> list[EventPartition]:
    """Detach and drop the partitions of days that ended by ``older_than``."""
    records = await conn.fetch(query("drop_event_partitions"), older_than)
    return [_partition(r) for r in records]


async def event_partitions(conn: Executor) -> list[EventPartition]:
    records = await conn.fetch(query("event_partitions"))
    return [_partition(r) for r in records]


async def default_partition_rows(conn: Executor) -> int:
    return int(await conn.fetchval(query("default_partition_rows")) or 0)
