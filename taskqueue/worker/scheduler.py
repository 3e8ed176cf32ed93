"""Recurring tasks from a worker's side: about once a second one indexed
statement looks for due schedules, and each due slot is fired by whichever
worker gets to it first (``taskqueue.schedules.firing``; the database lets exactly
one through, so no worker leads). At start it makes sure the schedules the
worker's handler modules define exist."""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg

from taskqueue import db, schedules
from taskqueue.registry import Registry
from taskqueue.schedules.manager import Schedules
from taskqueue.worker.loop import PeriodicLoop

logger = logging.getLogger("taskqueue.worker")


class Scheduler(PeriodicLoop):
    name = "scheduler"

    def __init__(
        self, pool: asyncpg.Pool, registry: Registry, *, worker_id: str, interval: float = 1.0
    ) -> None:
        super().__init__(interval)
        self._pool = pool
        self._worker_id = worker_id
        self._defined = registry.schedules()
        self._defining = Schedules(db.Runner(pool), registry)  # checks them as any definition is
        self._undefined = bool(self._defined)

    async def run_once(self, now: datetime | None = None) -> list[schedules.FireResult]:
        """Define the code's schedules (once), then fire what is due at
        ``now`` (the database's clock when None). Returns what this worker fired."""
        if self._undefined:
            for changed in await self._defining.define_all(self._defined):
                logger.info("schedule %r defined (from code)", changed.name)
            self._undefined = False
        fired: list[schedules.FireResult] = []
        while True:
            results, full = await schedules.fire_due(self._pool, now=now, worker_id=self._worker_id)
            fired.extend(results)
            # A full check that fired nothing means others hold those rows:
            # the next check comes soon enough.
            if not full or not results:
                return fired
