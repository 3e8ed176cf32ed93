"""Tenants: a tenant's quota (taskqueue.tenants), its rate limit on starts
(taskqueue.tenant_rates) and what it uses. The counter itself is kept by the
statements that enqueue (admit_tasks) and end tasks (_tenant_counts.sql),
the rate window by the governed claim (claim_governed_tasks.sql), not here."""

from __future__ import annotations

from typing import Any

import msgspec

from taskqueue.models import QueueStats, RateLimit, Stats
from taskqueue.store._sql import Connection, Executor, query
from taskqueue.store.queues import summed_stats


class TenantUsage(msgspec.Struct, kw_only=True):
    """A tenant's quota and its unfinished tasks (waiting, queued, running);
    its rate limit on starts and how many of its tasks started within the
    last period of it."""

    name: str
    max_queued: int | None  # None: no limit
    unfinished: int | None  # None: not counted (the tenant never had a quota)
    rate_limit: RateLimit | None = None  # None: no rate limit on starts
    recent_starts: int | None = None  # None: no rate limit, so no window kept


async def tenant_usage(conn: Executor, tenant: str) -> TenantUsage:
    (usage,) = await _usages(conn, tenant, 0, None)  # one row for any name
    return usage


async def tenants_usage(conn: Executor, *, offset: int, limit: int | None) -> list[TenantUsage]:
    """Every tenant counted (it has or had a quota) or with a rate limit, by
    name (a page of them)."""
    return await _usages(conn, None, offset, limit)


async def _usages(
    conn: Executor, tenant: str | None, offset: int, limit: int | None
) -> list[TenantUsage]:
    records = await conn.fetch(query("tenant_usage"), tenant, offset, limit)
    return [
        TenantUsage(
            name=r["name"],
            max_queued=r["max_queued"],
            unfinished=r["unfinished"],
            rate_limit=None
            if r["rate_limit"] is None
            else RateLimit(limit=r["rate_limit"], period_seconds=r["rate_period_seconds"]),
            recent_starts=r["recent_starts"],
        )
        for r in records
    ]


async def fold_tenant_counts(conn: Executor, limit: int = 1000) -> int:
    """Fold up to ``limit`` tenants' deltas into their counters; how many rows went."""
    return int(await conn.fetchval(query("fold_tenant_counts"), limit))


async def set_tenant_limits(
    conn: Executor, tenant: str, *, max_queued: int | None, actor: str, asked: Any
) -> None:
    await conn.execute(query("set_tenant_limits"), tenant, max_queued, actor, asked)


async def change_tenant_limits(
    conn: Connection,
    tenant: str,
    *,
    max_queued: int | msgspec.UnsetType | None = msgspec.UNSET,
    rate: RateLimit | msgspec.UnsetType | None = msgspec.UNSET,
    actor: str,
) -> None:
    """Change the limits given (UNSET: keep it; None: remove it) in one
    transaction, each logged as asked."""
    async with conn.transaction():
        if max_queued is not msgspec.UNSET:
            await set_tenant_limits(
                conn, tenant, max_queued=max_queued, actor=actor, asked={"max_queued": max_queued}
            )
        if rate is not msgspec.UNSET:
            asked = {"rate_limit": None if rate is None else msgspec.to_builtins(rate)}
            await set_tenant_rate(conn, tenant, rate, actor=actor, asked=asked)


async def set_tenant_rate(
    conn: Connection, tenant: str, rate: RateLimit | None, *, actor: str, asked: Any
) -> None:
    """Set (or with None clear) ``tenant``'s rate limit on starts."""
    await conn.execute(
        query("set_tenant_rate"),
        tenant,
        None if rate is None else rate.limit,
        None if rate is None else rate.period_seconds,
        actor,
        asked,
    )


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
