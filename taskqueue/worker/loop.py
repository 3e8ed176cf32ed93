"""The shape every background loop of a worker shares: ``run_once()`` does one
pass (tests call it directly) and ``run()`` repeats it at a jittered interval
until stopped, riding out database outages. ``CostPacer`` paces the reads
inside a loop whose cost grows while vacuum is held back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from taskqueue.retrying import ReconnectDelay, is_transient

logger = logging.getLogger("taskqueue.worker")


class PeriodicLoop:
    name = "loop"

    def __init__(self, interval: float, *, first_delay: float | None = None) -> None:
        self.interval = interval
        self._first_delay = first_delay
        self._stopping = asyncio.Event()
        self.failures = 0  # passes that failed for a passing reason, then retried

    def readings(self) -> dict[str, int]:
        """What this loop has counted: passes retried after a passing failure
        (loops that count more add theirs)."""
        return {"failures": self.failures}

    def stop(self) -> None:
        self._stopping.set()

    async def run_once(self) -> object:
        raise NotImplementedError

    async def run(self) -> None:
        retry = ReconnectDelay(first=min(0.5, self.interval / 4), cap=self.interval)
        delay = self._first_delay
        if delay is None:
            delay = self.interval * random.uniform(0.1, 1.0)  # spread workers' first passes
        while not await self._stopped_within(delay):
            try:
                await self.run_once()
                retry.reset()
                delay = self.interval * random.uniform(0.8, 1.2)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.failures += 1
                delay = retry.next_delay()
                logger.warning(
                    "%s failed (%s); retrying in %.2fs", self.name, type(exc).__name__, delay
                )

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()


class CostPacer:
    """Paces a safety-net read whose cost grows with what vacuum has not
    removed yet (an index read from its start walks every dead entry while
    something holds back the xmin horizon): it is due at most every
    ``every`` seconds, and never takes more than ``share`` of the time
    however long one read gets, so it cannot crowd out the claim path."""

    def __init__(self, every: float, *, share: float = 0.01) -> None:
        self.every = every
        self.share = share
        self.next_at = float("-inf")  # time.monotonic() when due again
        self.last_took = 0.0  # seconds the last read took

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def ran(self, started: float) -> None:
        """Record a read that began at ``started`` (time.monotonic())."""
        now = time.monotonic()
        self.last_took = now - started
        self.next_at = now + max(self.every, self.last_took / self.share)
