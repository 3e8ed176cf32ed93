"""The claim loop: asks PostgreSQL for as many due tasks of the types this
worker can run as the ledger has room for, in one statement, and hands them
to the ledger.

It claims again at once while claims come back full, and otherwise sleeps
until a NOTIFY (enqueue wakeup) or a jittered poll interval, whichever is first.
Without NOTIFYs (a transaction pooler and no direct URL: ``listening=False``)
it polls adaptively instead: soon after a claim found work, backing off to
at most half a second while idle, so a new task waits well under a second.
The claim has a timeout shorter than a third of the lease: it is on the lease
path, and a claim stuck behind a broken network must not hold up the loop.

While none of its queues has settings (a pause or a limit) or a lane of a
tenant with a rate limit on starts, the worker sends the plain claim; once
one has, the governed claim, which applies them. It looks once a poll
interval, and at once when a settings change is announced. The plain claim
itself skips such queues and lanes, so a worker that has not yet noticed
one never oversteps it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence

import asyncpg

from taskqueue import store
from taskqueue.models import ClaimedTask
from taskqueue.retrying import ReconnectDelay, is_transient
from taskqueue.worker.inflight import InFlight

logger = logging.getLogger("taskqueue.dispatcher")

# Polling without NOTIFYs: the first wait after work was found, and the cap
# the wait doubles up to while nothing is due (jittered down to half).
POLL_ONLY_FLOOR = 0.05
POLL_ONLY_CAP = 0.5


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        inflight: InFlight,
        *,
        queues: Sequence[str],
        types: Sequence[str],
        parent_result_types: Sequence[str] = (),
        worker_id: str,
        lease_seconds: float,
        poll_interval: float,
        on_claimed: Callable[[list[ClaimedTask]], None] | None = None,
        listening: bool = True,
    ) -> None:
        self._pool = pool
        self._inflight = inflight
        self._queues = list(queues)
        self._types = list(types)
        self._parent_result_types = list(parent_result_types)
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._timeout = lease_seconds / 4
        self._poll_interval = poll_interval
        self._listening = listening
        self._poll_cap = min(poll_interval, POLL_ONLY_CAP)
        self._poll_delay = self._poll_cap
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._governed = False  # some of this worker's queues have settings
        self._settings_checked_at = float("-inf")
        self.claims = 0  # claim statements sent
        self.retries = 0  # claims that failed for a passing reason
        self._on_claimed = on_claimed  # told about every batch claimed (metrics)

    def readings(self) -> dict[str, int]:
        """What this loop has counted: claim statements sent, and claims
        retried after a passing failure."""
        return {"claims": self.claims, "retries": self.retries}

    def wake(self) -> None:
        """New tasks may be due (a NOTIFY arrived, or the listener reconnected)."""
        self._wakeup.set()

    def settings_changed(self) -> None:
        """A queue's pause or limits changed: look again before the next claim."""
        self._settings_checked_at = float("-inf")
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        self._inflight.wake_claimer()

    async def run_once(self) -> int:
        """One claim for all free capacity; returns how many tasks it got."""
        free = self._inflight.free
        if free <= 0:
            return 0
        self._wakeup.clear()
        timeout = self._timeout
        async with self._pool.acquire(timeout=timeout) as conn:
            if time.monotonic() - self._settings_checked_at >= self._poll_interval:
                self._settings_checked_at = time.monotonic()
                self._governed = bool(await store.queues_with_settings(conn, self._queues))
            sent_at = time.monotonic()
            tasks = await store.claim_tasks(
                conn,
                self._queues,
                free,
                self._worker_id,
                self._lease_seconds,
                types=self._types,
                parent_result_types=self._parent_result_types,
                governed=self._governed,
                statement_timeout=timeout,
            )
        self.claims += 1
        self._inflight.add(tasks, sent_at)
        if tasks and self._on_claimed is not None:
            self._on_claimed(tasks)
        return len(tasks)

    async def run(self) -> None:
        retry = ReconnectDelay()
        inflight = self._inflight
        while not self._stopping:
            if not inflight.worth_claiming():
                await inflight.wait_for_room()
                continue
            free = inflight.free
            try:
                got = await self.run_once()
                retry.reset()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.retries += 1
                delay = retry.next_delay()
                logger.warning("claim failed (%s); retrying in %.2fs", type(exc).__name__, delay)
                await self._sleep(delay)
                continue
            if got < free:
                # Nothing more is due right now.
                await self._sleep(self._idle_delay(got) * random.uniform(0.5, 1.0))

    def _idle_delay(self, got: int) -> float:
        """How long to wait before the next claim when nothing more is due."""
        if self._listening:
            return self._poll_interval
        # Work found: more may follow soon (enqueuers come in bursts); idle:
        # back off so that a fleet of idle workers costs a few claims a second.
        floor = min(POLL_ONLY_FLOOR, self._poll_cap)
        self._poll_delay = floor if got else min(self._poll_cap, self._poll_delay * 2)
        return self._poll_delay

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early for a NOTIFY or stop()."""
        if self._wakeup.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
