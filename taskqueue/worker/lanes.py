"""Keeps the floors of the claim lanes this worker claims from (see
migration 0007 and queries/claim_tasks.sql): about once a second it raises
them past what has been claimed, so that a claim reads from where queued
tasks begin instead of walking every index entry earlier claims left behind
(which vacuum cannot remove while something holds back the xmin horizon).
Any worker may do it; a lane another worker is raising is skipped.

Two safety nets run seldom: every ``check_every`` seconds each lane is
read from its start and lowered if a queued task lies below its floor (a
producer that committed long after its INSERT, or a task written by hand),
and every ``open_every`` seconds queued tasks with no lane get one. Both
walk every dead index entry while vacuum is held back, so each is paced
by its cost too (``CostPacer``: at most 1 % of the time). A task caught by
either waits at most that long; nothing is ever left behind."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import asyncpg

from taskqueue import store
from taskqueue.worker.loop import CostPacer, PeriodicLoop

logger = logging.getLogger("taskqueue.worker")

# How far behind the clock a floor stays: an INSERT that began this long ago
# and has not committed when a floor is raised may land below it (then the
# check finds it). Claims read this much of a lane's recent past again.
GRACE_SECONDS = 2.0


class LaneKeeper(PeriodicLoop):
    name = "lane keeper"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        queues: Sequence[str],
        types: Sequence[str],
        interval: float = 1.0,
        grace: float = GRACE_SECONDS,
        raise_every: float | None = None,
        check_every: float = 15.0,
        open_every: float = 60.0,
    ) -> None:
        super().__init__(interval, first_delay=interval)
        self._pool = pool
        self._queues = list(queues)
        self._types = list(types)
        self._grace = grace
        # A little under the loop's interval by default, so that jitter does
        # not make a worker skip its lanes every other pass.
        self._raise_every = interval / 2 if raise_every is None else raise_every
        self._check_every = check_every
        # Both safety nets read from an index's start; CostPacer keeps them
        # to a sliver of the time when vacuum is held back. The check is
        # asked for more often than a lane is due (the database says which
        # lanes are), so a lane waits little past check_every.
        self._check = CostPacer(check_every / 3)
        self._open = CostPacer(open_every)
        self.raised = 0  # lane floors raised
        self.lowered = 0  # floors found above a queued task, lowered
        self.opened = 0  # lanes opened for tasks that had none

    def readings(self) -> dict[str, int]:
        return {
            **super().readings(),
            "raised": self.raised,
            "lowered": self.lowered,
            "opened": self.opened,
        }

    async def run_once(self) -> None:
        if self._open.due():
            started = time.monotonic()
            opened = await store.open_missing_lanes(self._pool, self._queues)
            self._open.ran(started)
            self.opened += len(opened)
            for lane in opened:
                logger.warning(
                    "queued tasks of queue %r, type %r, priority %d had no claim lane (written"
                    " without taskqueue?): opened one",
                    *lane,
                )
        if self._check.due():
            started = time.monotonic()
            lowered = await store.check_lanes(
                self._pool, self._queues, self._types, every=self._check_every
            )
            self._check.ran(started)
            self.lowered += len(lowered)
            for lane in lowered:
                logger.info(
                    "claim lane %r/%r/%d had a queued task below its floor"
                    " (committed long after it was inserted): lowered",
                    *lane,
                )
        raised = await store.advance_lanes(
            self._pool,
            self._queues,
            self._types,
            grace=self._grace,
            every=self._raise_every,
        )
        self.raised += len(raised)
