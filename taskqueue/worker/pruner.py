"""The pruner: every worker deletes finished tasks past their retention, in
bounded batches, and folds the finish counters; no leader.

Each batch is one statement (store.prune_tasks) that locks what it deletes
with SKIP LOCKED, so pruners running at once on many workers share the work
and never delete a row twice; it reads and locks finished rows only, so
claims never wait on it. A pass goes on while batches come back full,
pausing between them, and then folds queue_counts."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import asyncpg

from taskqueue import store
from taskqueue.config import Retention
from taskqueue.worker.loop import PeriodicLoop

logger = logging.getLogger("taskqueue.pruner")

BATCH = 1000  # rows per part of one statement: short locks, short statements
PAUSE = 0.05  # seconds between full batches: the pruner never hogs the database
LAG = timedelta(minutes=10)  # at most: most tasks finish within it of being made
SWEEP = timedelta(minutes=1)  # at least: how often a walk may start again from the oldest id


class Pruner(PeriodicLoop):
    """Deletes finished tasks past retention (``retention``, or the queue's
    own) with a task_deleted event each; their other events stay.

    Succeeded tasks are found by walking ids (UUIDv7: creation order) up to
    the cut-off less ``lag``, one walk per succeeded retention in use (the
    default and each queue's own), so the walk costs nothing on the
    completion path; a task that finished more than ``lag`` after it was
    made is found by the next sweep, which starts the walk again from the
    oldest id once it is ``sweep`` old. By default lag is a tenth of the
    walk's retention (at most 10 minutes) and sweep the retention itself (at
    least a minute): a succeeded task goes within about its retention plus
    lag, a late one within twice its retention."""

    name = "pruner"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        worker_id: str,
        retention: Retention,
        interval: float = 30.0,
        batch: int = BATCH,
        lag: timedelta | None = None,
        sweep: timedelta | None = None,
    ) -> None:
        super().__init__(interval)
        self._pool = pool
        self._worker_id = worker_id
        self._retention = retention
        self._batch = batch
        self._lag = lag
        self._sweep = sweep
        self.pruned = 0  # tasks deleted
        self.batches = 0
        self.folded = 0  # counter rows folded away

    def readings(self) -> dict[str, int]:
        return {
            **super().readings(),
            "pruned": self.pruned,
            "batches": self.batches,
            "folded": self.folded,
        }

    async def run_once(self, now: datetime | None = None) -> int:
        """Prune until a batch comes back short (or the loop is stopped),
        then fold the counters; returns how many tasks were deleted."""
        deleted = 0
        async with self._pool.acquire() as conn:
            walks = {self._retention.succeeded, *await store.succeeded_retentions(conn)}
        for walk in sorted(walks):
            deleted += await self._walk(walk, now)
        deleted += await self._expired(now)
        async with self._pool.acquire() as conn:
            self.folded += await store.fold_queue_counts(conn, now)
            self.folded += await store.fold_tenant_counts(conn)
        self.pruned += deleted
        if deleted:
            logger.info("pruned %d finished tasks past their retention", deleted)
        return deleted

    async def _expired(self, now: datetime | None) -> int:
        """Batches of expired tasks past retention (kept as long as cancelled ones)."""
        deleted = 0
        while not self._stopping.is_set():
            async with self._pool.acquire() as conn:
                done = await store.prune_expired(
                    conn,
                    self._retention.cancelled,
                    worker_id=self._worker_id,
                    limit=self._batch,
                    now=now,
                )
            deleted += done
            if done < self._batch:
                break
            await asyncio.sleep(PAUSE)
        return deleted

    async def _walk(self, walk: timedelta, now: datetime | None) -> int:
        """Batches for the succeeded tasks kept for ``walk`` (and the failed
        and cancelled ones due) until one comes back short."""
        deleted = 0
        while True:
            async with self._pool.acquire() as conn:
                done = await store.prune_tasks(
                    conn,
                    self._retention,
                    walk=walk,
                    worker_id=self._worker_id,
                    limit=self._batch,
                    lag=self._lag if self._lag is not None else min(LAG, walk / 10),
                    sweep=self._sweep if self._sweep is not None else max(SWEEP, walk),
                    now=now,
                )
            self.batches += 1
            deleted += done.deleted
            if not done.more or self._stopping.is_set():
                return deleted
            await asyncio.sleep(PAUSE)
