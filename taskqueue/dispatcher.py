"""The claim loop: asks PostgreSQL for as many due tasks as there is free
capacity, in one statement, and hands them to the executors.

It claims again at once while claims come back full, and otherwise sleeps
until a NOTIFY (enqueue wakeup) or a jittered poll interval, whichever is first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid

import asyncpg

from taskqueue import store
from taskqueue.executor import Attempt
from taskqueue.retrying import ReconnectDelay, is_transient

logger = logging.getLogger("taskqueue.dispatcher")

# Prefetched tasks should start within about this long. Prefetch is what lets
# tiny tasks run at tens of thousands a second, but a slow task claimed early
# only waits here while another worker could have run it.
PREFETCH_HORIZON_SECONDS = 0.05


class RunTimes:
    """Moving average of how long handlers take on this worker."""

    def __init__(self) -> None:
        self.mean: float | None = None

    def record(self, seconds: float) -> None:
        self.mean = seconds if self.mean is None else self.mean + 0.05 * (seconds - self.mean)


class Dispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        queues: tuple[str, ...],
        worker_id: str,
        lease_seconds: float,
        concurrency: int,
        max_prefetch: int,
        run_times: RunTimes,
        poll_interval: float,
        held: dict[uuid.UUID, Attempt],
        ready: asyncio.Queue[Attempt | None],
    ) -> None:
        self._pool = pool
        self._queues = queues
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._concurrency = concurrency
        self._max_prefetch = max_prefetch
        self._run_times = run_times
        self._poll_interval = poll_interval
        self._held = held
        self._ready = ready
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._stopping = False
        self.claimed = 0

    def wake(self) -> None:
        """New tasks may be due (a NOTIFY arrived, or the listener reconnected)."""
        self._wakeup.set()

    def room_made(self) -> None:
        """Held tasks were completed: there may be capacity again."""
        self._room.set()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        self._room.set()

    @property
    def prefetch(self) -> int:
        """Claimed tasks allowed to wait for an executor: as many as the
        executors get through within the horizon, at most ``max_prefetch``."""
        mean = self._run_times.mean
        if mean is None:
            return min(self._max_prefetch, self._concurrency)
        fits = int(self._concurrency * PREFETCH_HORIZON_SECONDS / max(mean, 1e-6))
        return max(0, min(self._max_prefetch, fits))

    @property
    def capacity(self) -> int:
        return self._concurrency + self.prefetch

    @property
    def free(self) -> int:
        return self.capacity - len(self._held)

    async def run_once(self) -> int:
        """One claim for all free capacity; returns how many tasks it got."""
        free = self.free
        if free <= 0:
            return 0
        self._wakeup.clear()
        tasks = await store.claim_tasks(
            self._pool, self._queues, free, self._worker_id, self._lease_seconds
        )
        for task in tasks:
            attempt = Attempt(task)
            self._held[task.id] = attempt
            self._ready.put_nowait(attempt)
        self.claimed += len(tasks)
        return len(tasks)

    async def run(self) -> None:
        retry = ReconnectDelay()
        while not self._stopping:
            free = self.free
            # With work still waiting locally, wait for a worthwhile batch of
            # room rather than claim a handful of rows per round trip.
            batch_floor = max(1, self.capacity // 4)
            if free <= 0 or (free < batch_floor and not self._ready.empty()):
                self._room.clear()
                await self._room.wait()
                continue
            try:
                got = await self.run_once()
                retry.reset()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = retry.next_delay()
                logger.warning("claim failed (%s); retrying in %.2fs", type(exc).__name__, delay)
                await self._sleep(delay)
                continue
            if got < free:
                # Nothing more is due right now.
                await self._sleep(self._poll_interval * random.uniform(0.5, 1.0))

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early for a NOTIFY or stop()."""
        if self._wakeup.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
