"""Tenants: a tenant's quota (taskqueue.tenants) and what it uses. The
counter itself is kept by the statements that enqueue (admit_tasks) and end
tasks (_tenant_counts.sql), not here."""

from __future__ import annotations

from typing import Any

import msgspec

from taskqueue.store._sql import Executor, query


class TenantUsage(msgspec.Struct, kw_only=True):
    """A tenant's quota and its unfinished tasks (waiting, queued, running)."""

    name: str
    max_queued: int | None  # None: no limit
    unfinished: int


async def tenant_usage(conn: Executor, tenant: str) -> TenantUsage:
    record = await conn.fetchrow(query("tenant_usage"), tenant)
    assert record is not None  # the statement always returns one row
    return TenantUsage(
        name=record["name"], max_queued=record["max_queued"], unfinished=record["unfinished"]
    )


async def set_tenant_limits(
    conn: Executor, tenant: str, *, max_queued: int | None, actor: str, asked: Any
) -> None:
    await conn.execute(query("set_tenant_limits"), tenant, max_queued, actor, asked)
