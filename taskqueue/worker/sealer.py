"""The history's sealer: every worker, every ``interval`` (1 s by default),
links the events committed since the last tick into the history's hash
chain (store.seal_history, migration 0021_sealed_by_workers), in ticks of at
most about ``batch`` events until it is caught up. One worker at a time: a
tick locks the sealer's row with SKIP LOCKED, so the others pass at once;
no leader. Producers, claims and completions pay nothing for the chain.

While it is behind (a full tick), the next tick waits so that ticks take at
most ``share`` of the time: in a burst sealing lags by a few seconds rather
than take the database's CPU from the claim path, and it still keeps up
with ``batch`` events per (tick time / share + tick time), about 40,000 events a second
at the default 25 % (a full tick measured 40-60 ms). The pacing is the
worker's CostPacer, as for the other reads that must not crowd out claims."""

from __future__ import annotations

import time

import asyncpg

from taskqueue import store
from taskqueue.worker.loop import CostPacer, PeriodicLoop

BATCH = 10_000  # events per tick at most (about: a transaction is never split)
SHARE = 0.25  # of the time, at most, that ticks take while the sealer is behind


class HistorySealer(PeriodicLoop):
    name = "sealer"

    def __init__(
        self, pool: asyncpg.Pool, *, interval: float = 1.0, batch: int = BATCH, share: float = SHARE
    ) -> None:
        super().__init__(interval)
        self._pool = pool
        self._batch = batch
        # While behind: the next tick waits so that ticks take at most `share`.
        self._pacer = CostPacer(0.0, share=share)
        self.sealed = 0  # events this worker's ticks sealed

    def readings(self) -> dict[str, int]:
        return {**super().readings(), "sealed": self.sealed}

    async def run_once(self) -> int:
        """Tick until a tick comes back short; returns how many events were sealed."""
        total = 0
        while True:
            started = time.monotonic()
            async with self._pool.acquire() as conn:
                sealed = await store.seal_history(conn, self._batch)
            total += sealed
            if sealed < self._batch or self._stopping.is_set():
                break
            self._pacer.ran(started)
            if await self._stopped_within(self._pacer.next_at - time.monotonic()):
                break
        self.sealed += total
        return total
