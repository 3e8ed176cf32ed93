"""The worker registry from the worker's side: it registers at start,
heartbeats every few seconds with how many tasks it holds, says when it is
stopping and when it has stopped. A worker whose heartbeat is three
intervals old is shown as lost; rows of workers gone for a day are pruned by
the heartbeats of the others."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence

import asyncpg

from taskqueue import __version__, store
from taskqueue.worker.inflight import InFlight
from taskqueue.worker.loop import PeriodicLoop

logger = logging.getLogger("taskqueue.worker")

PRUNE_AFTER_SECONDS = 86400.0


class Heartbeat(PeriodicLoop):
    name = "heartbeat"

    def __init__(
        self,
        pool: asyncpg.Pool,
        inflight: InFlight,
        *,
        worker_id: str,
        queues: Sequence[str],
        types: Sequence[str],
        interval: float,
    ) -> None:
        super().__init__(interval, first_delay=interval)
        self._pool = pool
        self._inflight = inflight
        self._worker_id = worker_id
        self._queues = list(queues)
        self._types = list(types)
        self._registered = False
        self.state = "running"

    async def _register(self) -> None:
        await store.register_worker(
            self._pool,
            self._worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self._queues,
            types=self._types,
            concurrency=self._inflight.concurrency,
            version=__version__,
            heartbeat_seconds=self.interval,
        )

    async def run_once(self) -> None:
        if not self._registered:
            await self._register()
            self._registered = True
        await store.heartbeat_worker(
            self._pool, self._worker_id, self._inflight.held, self.state, PRUNE_AFTER_SECONDS
        )

    async def announce(self, state: str) -> None:
        """Record a change of state now rather than at the next beat (best
        effort: the database may be what the worker is stopping for)."""
        self.state = state
        try:
            await asyncio.wait_for(self.run_once(), 2.0)
        except Exception as exc:
            logger.warning("could not record the worker as %s (%s)", state, type(exc).__name__)
