"""The dependency reconciler: a safety net behind the statements that
settle dependents as they finish their parents. Every worker now and then
settles waiting tasks none of whose parents is unfinished (released, or
cancelled when a failed parent asked for it), with events saying the
reconciler did it. In a sound run it finds nothing; what it finds it counts,
so that a missed settlement shows in the metrics instead of hiding."""

from __future__ import annotations

import logging

import asyncpg

from taskqueue import store
from taskqueue.worker.loop import PeriodicLoop

logger = logging.getLogger("taskqueue.worker")

BATCH = 500  # tasks per statement: short locks (SKIP LOCKED: workers share the work)


class DependencyReconciler(PeriodicLoop):
    name = "dependency-reconciler"

    def __init__(
        self, pool: asyncpg.Pool, *, worker_id: str, interval: float = 30.0, batch: int = BATCH
    ) -> None:
        super().__init__(interval)
        self._pool = pool
        self._worker_id = worker_id
        self._batch = batch
        self.released = 0
        self.cancelled = 0

    def readings(self) -> dict[str, int]:
        return {**super().readings(), "released": self.released, "cancelled": self.cancelled}

    async def run_once(self) -> tuple[int, int]:
        """Settle what is stranded, a batch at a time; returns (released, cancelled)."""
        released = cancelled = 0
        while True:
            r, c = await store.reconcile_waiting(
                self._pool, limit=self._batch, worker_id=self._worker_id
            )
            released, cancelled = released + r, cancelled + c
            if r + c < self._batch:
                break
        if released or cancelled:
            logger.warning(
                "dependency reconciler settled %d released and %d cancelled waiting task(s)"
                " whose parents had all finished",
                released,
                cancelled,
            )
        self.released += released
        self.cancelled += cancelled
        return released, cancelled
