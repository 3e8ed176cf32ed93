"""Leases: the keeper renews this worker's, the rescuer takes back everyone's
that ran out.

Renewal is the lease path: its statement has a timeout shorter than a third
of the lease, and a renewal that fails extends nothing, so the ledger's
deadlines run out and handlers stop before the database could give their
tasks to another worker."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta

import asyncpg

from taskqueue import store
from taskqueue.models import Status
from taskqueue.worker.inflight import InFlight
from taskqueue.worker.loop import CostPacer, PeriodicLoop

logger = logging.getLogger("taskqueue.leases")


class LeaseKeeper(PeriodicLoop):
    """Extends the lease of every task this worker holds, in one statement,
    every lease/3; attempts whose lease was lost to the rescuer are stopped."""

    name = "lease keeper"

    def __init__(
        self,
        pool: asyncpg.Pool,
        inflight: InFlight,
        *,
        worker_id: str,
        lease_seconds: float,
    ) -> None:
        super().__init__(lease_seconds / 3)
        self._pool = pool
        self._inflight = inflight
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._timeout = lease_seconds / 4
        self.renewals = 0
        self.renewed = 0  # leases extended

    def readings(self) -> dict[str, int]:
        return {**super().readings(), "renewals": self.renewals, "renewed": self.renewed}

    async def run_once(self) -> set[uuid.UUID]:
        """Returns the ids whose lease was lost."""
        attempts = self._inflight.leased()
        if not attempts:
            return set()
        ids = [a.task.id for a in attempts]
        timeout = self._timeout
        sent_at = time.monotonic()
        async with self._pool.acquire(timeout=timeout) as conn:
            kept = await store.extend_leases(
                conn, ids, self._worker_id, self._lease_seconds, statement_timeout=timeout
            )
        self.renewals += 1
        self.renewed += len(kept)
        lost = self._inflight.renewed(attempts, kept, sent_at)
        if lost:
            logger.warning(
                "the leases of %d tasks were lost (taken back by a rescuer); stopped them: %s",
                len(lost),
                ", ".join(str(a.task.id) for a in lost[:10]),
            )
        return {a.task.id for a in lost}


class Rescuer(PeriodicLoop):
    """Takes back tasks whose worker stopped renewing their lease (crashed,
    killed, partitioned): queued again if retries are left, else failed.
    Each pass also counts the running tasks of queues with a concurrency
    limit afresh, under their locks, which puts right the one count a claim
    can get wrong: a claim already in flight when the limit was set.

    A pass reads the lease index from a floor: a few seconds before the time
    the previous pass judged leases by, below which it left nothing (a new
    lease ends after it, unless the statement giving it ran for longer than
    the lease: the margin covers that). While vacuum is held back the index keeps an entry for every
    lease ever given, and a pass from the start would walk them all. The one
    lease a floored pass can miss is one it skipped because another
    statement held the row and then rolled back; a full pass, paced by its
    cost (``CostPacer``, at most every ``full_every`` seconds), finds it."""

    name = "rescuer"
    LIMIT = 1000  # tasks per pass
    MARGIN = timedelta(seconds=5)  # the floor trails the last judging time by this

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        worker_id: str,
        interval: float,
        full_every: float = 300.0,
    ) -> None:
        super().__init__(interval)
        self._pool = pool
        self._worker_id = worker_id
        self._floor: datetime | None = None
        self._full = CostPacer(full_every)
        self.rescued = 0

    def readings(self) -> dict[str, int]:
        return {**super().readings(), "rescued": self.rescued}

    async def run_once(self, now: datetime | None = None) -> list[tuple[uuid.UUID, Status]]:
        """One pass; ``now`` pins the time leases are judged by (tests), and
        such a pass reads the whole index and moves no floor."""
        if now is not None:
            rescued = await store.rescue_expired(self._pool, self._worker_id, now=now)
        else:
            rescued = await self._rescue()
        self.rescued += len(rescued)
        if rescued:
            logger.warning("rescued %d tasks whose lease had expired", len(rescued))
        async with self._pool.acquire() as conn:
            await store.recount_running(conn)
        return rescued

    async def _rescue(self) -> list[tuple[uuid.UUID, Status]]:
        full = self._floor is None or self._full.due()
        started = time.monotonic()
        rescue = await store.rescue_expired_since(
            self._pool, self._worker_id, None if full else self._floor, limit=self.LIMIT
        )
        if full:
            self._full.ran(started)
        if len(rescue.rescued) < self.LIMIT:  # nothing left below judged_at
            self._floor = rescue.judged_at - self.MARGIN
        return rescue.rescued
