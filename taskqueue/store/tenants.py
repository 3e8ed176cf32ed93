"""Tenants: a tenant's quota (taskqueue.tenants) and what it uses. The
counter itself is kept by the statements that enqueue (admit_tasks) and end
tasks (_tenant_counts.sql), not here."""

from __future__ import annotations

from typing import Any

import msgspec

from taskqueue.models import QueueStats, Stats
from taskqueue.store._sql import Executor, query
from taskqueue.store.queues import summed_stats


class TenantUsage(msgspec.Struct, kw_only=True):
    """A tenant's quota and its unfinished tasks (waiting, queued, running)."""

    name: str
    max_queued: int | None  # None: no limit
    unfinished: int | None  # None: not counted (the tenant never had a quota)


async def tenant_usage(conn: Executor, tenant: str) -> TenantUsage:
    record = await conn.fetchrow(query("tenant_usage"), tenant)
    assert record is not None  # the statement always returns one row
    return TenantUsage(
        name=record["name"], max_queued=record["max_queued"], unfinished=record["unfinished"]
    )


async def fold_tenant_counts(conn: Executor, limit: int = 1000) -> int:
    """Fold up to ``limit`` tenants' deltas into their counters; how many rows went."""
    return int(await conn.fetchval(query("fold_tenant_counts"), limit))


async def set_tenant_limits(
    conn: Executor, tenant: str, *, max_queued: int | None, actor: str, asked: Any
) -> None:
    await conn.execute(query("set_tenant_limits"), tenant, max_queued, actor, asked)


async def tenant_stats(conn: Executor, tenant: str) -> Stats:
    """``tenant``'s tasks counted, in total and per queue (GET /api/stats)."""
    rows = await conn.fetch(query("tenant_stats"), tenant)
    queues = [
        QueueStats(
            queue=r["queue"],
            total_tasks=r["total"],
            queued_tasks=r["queued"],
            waiting_tasks=r["waiting"],
            due_tasks=r["due"],
            running_tasks=r["running"],
            succeeded_tasks=r["succeeded"],
            failed_tasks=r["failed"],
            cancelled_tasks=r["cancelled"],
            expired_tasks=r["expired"],
            avg_retry_count=r["retries"] / r["total"],
            tasks_with_retries=r["tasks_with_retries"],
        )
        for r in rows
    ]
    return summed_stats(queues, sum(int(r["retries"]) for r in rows))
