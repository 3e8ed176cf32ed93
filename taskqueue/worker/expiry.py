"""The expiry sweep: every worker ends queued tasks whose expires_at has
passed (status ``expired``, a ``task_expired`` event each, their callbacks
queued), in bounded batches; no leader.

Claims never start an expired task: they pass over it (claim_tasks.sql),
which costs a claim nothing measurable, where ending it there (its event,
counts and callback in the claim statement) measured ~7 % slower per claim.
This ends them all, those claims passed over and those no claim reaches (a
queue nobody serves, a paused queue, a backlog), within about an interval.
Each batch is one statement (store.expire_tasks) taking rows FOR UPDATE SKIP
LOCKED, so sweeps on many workers share the work and never wait on a claim."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import asyncpg

from taskqueue import store
from taskqueue.worker.loop import PeriodicLoop

logger = logging.getLogger("taskqueue.expiry")

BATCH = 1000
PAUSE = 0.05  # seconds between full batches


class ExpirySweep(PeriodicLoop):
    name = "expiry"

    def __init__(
        self, pool: asyncpg.Pool, *, worker_id: str, interval: float = 5.0, batch: int = BATCH
    ) -> None:
        super().__init__(interval)
        self._pool = pool
        self._worker_id = worker_id
        self._batch = batch
        self.expired = 0  # tasks this worker's sweep ended

    def readings(self) -> dict[str, int]:
        return {**super().readings(), "expired": self.expired}

    async def run_once(self, now: datetime | None = None) -> int:
        """Expire due tasks until a batch comes back short; returns how many."""
        total = 0
        while True:
            async with self._pool.acquire() as conn:
                ids = await store.expire_tasks(conn, self._worker_id, limit=self._batch, now=now)
            total += len(ids)
            if len(ids) < self._batch or self._stopping.is_set():
                break
            await asyncio.sleep(PAUSE)
        self.expired += total
        if total:
            logger.info("expired %d queued tasks not started by their expires_at", total)
        return total
