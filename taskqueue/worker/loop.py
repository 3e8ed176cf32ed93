"""The shape every background loop of a worker shares: ``run_once()`` does one
pass (tests call it directly) and ``run()`` repeats it at a jittered interval
until stopped, riding out database outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

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
