"""Tasks of types this worker cannot run stay queued for a worker that can:
it never claims them. This loop makes that visible: once a minute it looks
for such types in the worker's queues and names each in a warning."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from taskqueue import store
from taskqueue.worker.loop import PeriodicLoop

logger = logging.getLogger("taskqueue.worker")


class UnhandledTypes(PeriodicLoop):
    name = "unhandled-type check"

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        queues: Sequence[str],
        types: Sequence[str],
        interval: float = 60.0,
    ) -> None:
        super().__init__(interval, first_delay=min(2.0, interval))
        self._pool = pool
        self._queues = list(queues)
        self._types = list(types)

    async def run_once(self) -> list[tuple[str, str]]:
        """(queue, type) pairs with queued tasks no handler here can run."""
        found = [
            (queue, task_type)
            for queue in self._queues
            for task_type in await store.find_unhandled_types(self._pool, queue, self._types)
        ]
        for queue, task_type in found:
            logger.warning(
                "queue %r has tasks of type %r, which this worker has no handler for; they stay "
                "queued, uncharged, until a worker that has one takes them (this worker runs: %s)",
                queue,
                task_type,
                ", ".join(self._types),
            )
        return found
