"""Tenants: a tenant's quota (taskqueue.tenants) and what it uses. The
counter itself is kept by the statements that enqueue (admit_tasks) and end
tasks (_tenant_counts.sql), not here."""

from __future__ import annotations

from typing import Any

import msgspec

from taskqueue.models import QueueStats, Stats
from taskqueue.store._sql import Executor, query


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
    total = sum(q.total_tasks for q in queues)

    def total_of(attr: str) -> int:
        return sum(int(getattr(q, attr)) for q in queues)

    return Stats(
        total_tasks=total,
        queued_tasks=total_of("queued_tasks"),
        waiting_tasks=total_of("waiting_tasks"),
        due_tasks=total_of("due_tasks"),
        running_tasks=total_of("running_tasks"),
        succeeded_tasks=total_of("succeeded_tasks"),
        failed_tasks=total_of("failed_tasks"),
        cancelled_tasks=total_of("cancelled_tasks"),
        expired_tasks=total_of("expired_tasks"),
        avg_retry_count=sum(r["retries"] for r in rows) / total if total else 0.0,
        tasks_with_retries=total_of("tasks_with_retries"),
        queues=queues,
    )
