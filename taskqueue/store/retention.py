"""Retention: pruning finished tasks past their queue's retention, and
folding the finish counters (queue_counts) the finishing statements append."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from taskqueue.config import Retention
from taskqueue.store._sql import Executor, query


class Pruned(msgspec.Struct, kw_only=True, frozen=True):
    """What one batch of pruning did; ``more`` when a part was full."""

    deleted: int
    walked: int
    failed: int
    cancelled: int
    limit: int

    @property
    def more(self) -> bool:
        return max(self.walked, self.failed, self.cancelled) >= self.limit


async def prune_expired(
    conn: Executor,
    retain: timedelta,
    *,
    worker_id: str,
    limit: int,
    now: datetime | None = None,
) -> int:
    """One batch of expired tasks past retention (their queue's
    retain_cancelled, else ``retain``) deleted; returns how many."""
    deleted = await conn.fetchval(query("prune_expired"), now, limit, retain, worker_id)
    return int(deleted or 0)


async def prune_tasks(
    conn: Executor,
    defaults: Retention,
    *,
    walk: timedelta,
    worker_id: str,
    limit: int,
    lag: timedelta,
    sweep: timedelta,
    now: datetime | None = None,
) -> Pruned:
    """One batch (see prune_tasks.sql): at most ``limit`` ids walked for
    the succeeded tasks kept for ``walk``, and ``limit`` failed and
    cancelled tasks each."""
    r = await conn.fetchrow(
        query("prune_tasks"),
        now,
        limit,
        walk,
        defaults.succeeded,
        defaults.failed,
        defaults.cancelled,
        lag,
        sweep,
        worker_id,
    )
    assert r is not None  # the function returns one row
    return Pruned(
        deleted=r["deleted"],
        walked=r["walked"],
        failed=r["failed"],
        cancelled=r["cancelled"],
        limit=limit,
    )


async def succeeded_retentions(conn: Executor) -> list[timedelta]:
    """The succeeded retentions queues set for themselves, each once."""
    return [r["retention"] for r in await conn.fetch(query("succeeded_retentions"))]


async def fold_queue_counts(
    conn: Executor, now: datetime | None = None, limit: int = 100_000
) -> int:
    """Fold each queue's counter rows older than a minute before ``now``
    (default: the database's clock) into one, and the last minute's into one
    a second; how many rows went."""
    return int(await conn.fetchval(query("fold_queue_counts"), limit, now))
