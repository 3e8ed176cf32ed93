"""Queues: their settings (pause, limits, retention) and running counts,
and the one read model of a queue's state (queue_states.sql) that the API,
the dashboard, /health and the metrics all ask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec

from taskqueue.config import Retention
from taskqueue.durations import format_duration
from taskqueue.models import (
    QueueInfo,
    QueueStats,
    RateLimit,
    Stats,
)
from taskqueue.store._sql import Connection, Executor, query

# -- operating the queue ---------------------------------------------------------


async def set_queue_paused(conn: Connection, queue: str, paused: bool, actor: str) -> None:
    async with conn.transaction():
        await conn.execute(query("set_queue_paused"), queue, paused, actor)
        await conn.execute(query("drop_empty_queue_settings"), queue)


async def queues_with_settings(conn: Executor, queues: Sequence[str]) -> set[str]:
    return {r["name"] for r in await conn.fetch(query("queues_with_settings"), list(queues))}


async def set_queue_limits(
    conn: Connection,
    queue: str,
    *,
    concurrency: int | None,
    change_concurrency: bool,
    rate: RateLimit | None,
    change_rate: bool,
    actor: str,
    asked: Any,
    per_key: int | None = None,
    change_per_key: bool = False,
) -> None:
    """Change a queue's limits and count its running tasks afresh, in one
    transaction (the first statement locks the row the recount relies on)."""
    async with conn.transaction():
        await conn.execute(
            query("set_queue_limits"),
            queue,
            change_concurrency,
            concurrency,
            change_rate,
            None if rate is None else rate.limit,
            None if rate is None else rate.period_seconds,
            actor,
            asked,
            change_per_key,
            per_key,
        )
        await conn.execute(query("recount_running"), [queue])
        await conn.execute(query("drop_empty_queue_settings"), queue)


async def set_queue_retention(
    conn: Connection,
    queue: str,
    changes: Mapping[str, timedelta | None],
    *,
    actor: str,
    asked: Any,
) -> None:
    """Change how long a queue's finished tasks are kept: ``changes`` maps
    succeeded, failed or cancelled to a duration, or None for the default."""
    args: list[Any] = [queue]
    for state in ("succeeded", "failed", "cancelled"):
        args += [state in changes, changes.get(state)]
    async with conn.transaction():
        await conn.execute(query("set_queue_retention"), *args, actor, asked)
        await conn.execute(query("drop_default_queue_retention"), queue)


async def recount_running(conn: Connection) -> dict[str, int]:
    """Count the running tasks of every limited queue afresh, under their
    locks: what a claim raced with a limit being set is put right."""
    async with conn.transaction():
        if not await conn.fetch(query("lock_limited_queues")):
            return {}
        records = await conn.fetch(query("recount_running"), None)
    return {r["name"]: r["running"] for r in records}


# -- a queue's state -----------------------------------------------------------


class QueueState(msgspec.Struct, kw_only=True, frozen=True):
    """One queue as queue_states.sql reads it. The counts a caller did not
    ask for (``failed``, ``totals``) are 0."""

    name: str
    paused: bool
    concurrency_limit: int | None
    rate_limit: RateLimit | None
    per_key_concurrency: int | None
    # The queue's own retention by state (None: the default).
    retain_succeeded: timedelta | None
    retain_failed: timedelta | None
    retain_cancelled: timedelta | None
    queued: int
    due: int
    scheduled: int  # queued with run_at ahead
    running: int
    waiting: int  # for their parents (dependencies)
    oldest_due_age_seconds: float  # 0 when none is due
    workers: int  # live workers that take from it
    failed: int
    expired: int  # ended without starting: not started by their expires_at
    # What finished (queue_counts), only when asked (``totals``): tasks
    # whose latest finish was succeeded or cancelled, kept or pruned since;
    # total adds the queued and running ones.
    total: int
    succeeded: int
    cancelled: int
    retries: int  # attempts beyond each finished task's first, summed
    tasks_with_retries: int
    # Finishes in the last minute (with ``totals``), and of those the failures.
    finished_last_minute: int
    failed_last_minute: int

    def info(self, defaults: Retention) -> QueueInfo:
        """The queue as GET /api/queues describes it (needs ``totals``), with
        its retention (its own, else ``defaults``)."""
        # QueueInfo's other fields are a subset of these, under the same names.
        mine = {f: getattr(self, f) for f in _INFO_FIELDS}
        return QueueInfo(
            **mine,
            retain_succeeded=format_duration(self.retain_succeeded or defaults.succeeded),
            retain_failed=format_duration(self.retain_failed or defaults.failed),
            retain_cancelled=format_duration(self.retain_cancelled or defaults.cancelled),
        )

    def stats(self) -> QueueStats:
        """The queue as GET /api/stats describes it (needs ``totals``)."""
        return QueueStats(
            queue=self.name,
            total_tasks=self.total,
            queued_tasks=self.queued,
            waiting_tasks=self.waiting,
            due_tasks=self.due,
            running_tasks=self.running,
            succeeded_tasks=self.succeeded,
            failed_tasks=self.failed,
            cancelled_tasks=self.cancelled,
            expired_tasks=self.expired,
            avg_retry_count=self.retries / self.total,
            tasks_with_retries=self.tasks_with_retries,
        )


_INFO_FIELDS = tuple(
    f
    for f in QueueInfo.__struct_fields__
    if f
    not in (
        "retain_succeeded",
        "retain_failed",
        "retain_cancelled",
    )
)


class QueueStates(msgspec.Struct, kw_only=True, frozen=True):
    """Every queue's state (or the one asked for), and the live workers."""

    queues: list[QueueState]
    live_workers: int  # distinct workers, whichever queues they take from
    totals: bool  # whether the counts of every row were read

    @property
    def due(self) -> int:
        """Tasks due and waiting for a worker, in every queue read."""
        return sum(q.due for q in self.queues)

    def stats(self) -> Stats:
        """GET /api/stats: the queues that hold tasks, and their sums."""
        if not self.totals:
            raise ValueError("read with totals=True to describe every task")
        per_queue = [q.stats() for q in self.queues if q.total]
        return summed_stats(per_queue, sum(q.retries for q in self.queues))


def summed_stats(per_queue: list[QueueStats], retries: int) -> Stats:
    """The sums of per-queue counts (GET /api/stats), ``retries`` over all
    tasks giving the average; the queues listed as they are."""
    total = sum(q.total_tasks for q in per_queue)

    def total_of(attr: str) -> int:
        return sum(int(getattr(q, attr)) for q in per_queue)

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
        avg_retry_count=retries / total if total else 0.0,
        tasks_with_retries=total_of("tasks_with_retries"),
        queues=per_queue,
    )


async def queue_states(
    conn: Executor,
    queue: str | None = None,
    *,
    failed: bool = False,
    totals: bool = False,
    offset: int = 0,
    limit: int | None = None,
) -> QueueStates:
    """Every queue's state, or ``queue``'s alone (see queue_states.sql).
    Cheap whatever is asked (partial indexes and queue_counts): ``failed``
    adds the failed count, ``totals`` (implying ``failed``) every count of
    what finished; ``offset`` and ``limit`` page through them by name."""
    records = await conn.fetch(
        query("queue_states"), queue, failed or totals, totals, offset, limit
    )
    return QueueStates(
        queues=[_queue_state(r) for r in records if r["name"] is not None],
        live_workers=int(records[0]["live_workers"]),
        totals=totals,
    )


def _queue_state(r: asyncpg.Record) -> QueueState:
    rate = None
    if r["rate_limit"] is not None:
        rate = RateLimit(limit=r["rate_limit"], period_seconds=r["rate_period_seconds"])
    return QueueState(**{f: r[f] for f in _STATE_COLUMNS}, rate_limit=rate)


# The columns of queue_states.sql under QueueState's names (the rate limit is
# two columns, put together above).
_STATE_COLUMNS = tuple(f for f in QueueState.__struct_fields__ if f != "rate_limit")
