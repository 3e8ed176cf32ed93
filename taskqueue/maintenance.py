"""The worker's background loops. Each has the same shape: ``run_once()`` does
one pass (tests call it directly) and ``run()`` repeats it at a jittered
interval until stopped, riding out database outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from datetime import datetime

import asyncpg

from taskqueue import store
from taskqueue.executor import Attempt
from taskqueue.models import Status
from taskqueue.retrying import ReconnectDelay, is_transient

logger = logging.getLogger("taskqueue.maintenance")


class PeriodicLoop:
    name = "loop"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run_once(self) -> object:
        raise NotImplementedError

    async def run(self) -> None:
        retry = ReconnectDelay(first=0.5, cap=self.interval)
        delay = self.interval * random.uniform(0.1, 1.0)  # spread workers' first passes
        while not await self._stopped_within(delay):
            try:
                await self.run_once()
                retry.reset()
                delay = self.interval * random.uniform(0.8, 1.2)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = retry.next_delay()
                logger.warning("%s failed (%s); retrying in %.2fs", self.name, exc, delay)

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()


class LeaseKeeper(PeriodicLoop):
    """Extends the lease of every task this worker holds, in one statement,
    every lease/3; interrupts attempts whose lease was lost to the rescuer."""

    name = "lease keeper"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        worker_id: str,
        lease_seconds: float,
        held: dict[uuid.UUID, Attempt],
    ) -> None:
        super().__init__(lease_seconds / 3)
        self._pool = pool
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._held = held
        self.lost = 0

    async def run_once(self) -> set[uuid.UUID]:
        """Returns the ids whose lease was lost."""
        attempts = dict(self._held)
        if not attempts:
            return set()
        kept = await store.extend_leases(
            self._pool, list(attempts), self._worker_id, self._lease_seconds
        )
        lost = {
            task_id
            for task_id, attempt in attempts.items()
            # Finished meanwhile (recorded, or waiting to be) is not lost.
            if task_id not in kept and not attempt.finished and self._held.get(task_id) is attempt
        }
        for task_id in lost:
            logger.warning("lease of task %s was lost; interrupting it", task_id)
            self._held[task_id].interrupt()
        self.lost += len(lost)
        return lost


class Rescuer(PeriodicLoop):
    """Takes back tasks whose worker stopped renewing their lease (crashed,
    killed, partitioned): queued again if retries are left, else failed."""

    name = "rescuer"

    def __init__(self, pool: asyncpg.Pool, *, worker_id: str, interval: float) -> None:
        super().__init__(interval)
        self._pool = pool
        self._worker_id = worker_id

    async def run_once(self, now: datetime | None = None) -> list[tuple[uuid.UUID, Status]]:
        rescued = await store.rescue_expired(self._pool, self._worker_id, now=now)
        if rescued:
            logger.warning("rescued %d tasks whose lease had expired", len(rescued))
        return rescued
