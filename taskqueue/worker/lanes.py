"""Keeps the floors of the claim lanes this worker claims from (see
migration 0007 and queries/claim_tasks.sql): twice a second it raises them
past what has been claimed, so that a claim reads from where queued tasks
begin instead of walking every index entry earlier claims left behind
(which vacuum cannot remove while something holds back the xmin horizon).
Any worker may do it; a lane another worker is raising is skipped.

A floor stays a short grace behind the clock, and what the grace does not
cover is caught at the next pass: a task whose producer's transaction was
still open when a floor passed it (catch_late_tasks.sql: the transactions
in progress at the previous pass that have ended since, looked up by the
events they wrote). How far a claim reads back is the grace plus a pass,
so it is kept short: at 6,000 tasks/s with the horizon held, a grace of
2 s and a pass a second made every claim step over some 15,000 dead index
entries, and pickup p99 was 4.7x the clean one (1.1x with these).

Two safety nets run seldom: every ``check_every`` seconds each lane is
read from its start and lowered if a queued task lies below its floor (a
producer whose worker died before its catch, or a task written by hand),
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

# How far behind the clock a floor stays: the time between a statement's
# start (a task's run_at) and its first row written (when its transaction
# gets the id the catch looks for), with room to spare. Claims read this
# much of a lane's recent past again, plus up to a pass.
GRACE_SECONDS = 0.5


class LaneKeeper(PeriodicLoop):
    name = "lane keeper"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        queues: Sequence[str],
        types: Sequence[str],
        interval: float = 0.5,
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
        self._running: list[int] = []  # transactions in progress at the last catch
        self.raised = 0  # lane floors raised
        self.caught = 0  # floors lowered for a task whose transaction outlasted the grace
        self.lowered = 0  # floors found above a queued task, lowered
        self.opened = 0  # lanes opened for tasks that had none

    def readings(self) -> dict[str, int]:
        return {
            **super().readings(),
            "raised": self.raised,
            "caught": self.caught,
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
                    "claim lane %r/%r/%d had a queued task below its floor (written by"
                    " hand, or its producer outlived the worker that passed it): lowered",
                    *lane,
                )
        # Just before the raise, which passes nothing that began after the
        # catch: a transaction in progress at the raise that its floor
        # passes is then in the list the next catch reads.
        catch = await store.catch_late_tasks(self._pool, self._running, self._queues, self._types)
        self._running = catch.running
        self.caught += catch.lowered
        raised = await store.advance_lanes(
            self._pool,
            self._queues,
            self._types,
            grace=self._grace,
            every=self._raise_every,
            until=catch.taken_at,
        )
        self.raised += len(raised)
