"""What the dashboard reads beside the queues' state: the total and
cancelled counts, throughput per minute, the latest failures, the clock."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from taskqueue.store._sql import Executor, query


class MinuteCounts(msgspec.Struct, kw_only=True, frozen=True):
    minute: datetime
    succeeded: int
    failed: int
    retried: int


class FailureGlance(msgspec.Struct, kw_only=True):
    queue: str
    type: str
    count: int
    last_failed_at: datetime
    sample_task_id: uuid.UUID
    error: str


async def dashboard_total(conn: Executor) -> int:
    return int(await conn.fetchval(query("dashboard_total")))


async def dashboard_cancelled(conn: Executor) -> int:
    return int(await conn.fetchval(query("dashboard_cancelled")))


async def dashboard_throughput(
    conn: Executor, since: datetime, until: datetime | None = None
) -> list[MinuteCounts]:
    """Per minute from ``since`` until ``until`` (None: now)."""
    records = await conn.fetch(query("dashboard_throughput"), since, until)
    return [MinuteCounts(**dict(r.items())) for r in records]


async def dashboard_failures(conn: Executor, limit: int) -> list[FailureGlance]:
    records = await conn.fetch(query("dashboard_failures"), limit)
    return [FailureGlance(**dict(r.items())) for r in records]


async def database_now(conn: Executor) -> datetime:
    value: datetime = await conn.fetchval(query("schedule_now"), None)
    return value
