"""Coalesces concurrent single-task inserts into one statement.

Each POST /api/tasks waits for the statement that carries its row to commit,
so a 201 still means the row and its event are committed; meanwhile requests
that arrive while a statement is in flight ride the next one together. Under
load this turns N commits into one, without adding latency when idle (the
first request is sent at once)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from taskqueue import store
from taskqueue.models import Enqueued

Insert = Callable[[Sequence[store.TaskRow]], Awaitable[list[Enqueued]]]


class GroupCommitter:
    def __init__(self, insert: Insert, *, max_batch: int = 500, max_in_flight: int = 2) -> None:
        self._insert = insert
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[store.TaskRow, asyncio.Future[Enqueued]]] = []
        self._in_flight = 0
        self._flushes: set[asyncio.Task[None]] = set()
        self.statements = 0  # how many statements carried inserts (for tests and stats)

    async def submit(self, row: store.TaskRow) -> Enqueued:
        future: asyncio.Future[Enqueued] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        self._maybe_flush()
        return await future

    def _maybe_flush(self) -> None:
        if self._waiting and self._in_flight < self._max_in_flight:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            self._in_flight += 1
            flush = asyncio.create_task(self._flush(batch))
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[store.TaskRow, asyncio.Future[Enqueued]]]) -> None:
        try:
            results = await self._insert([row for row, _ in batch])
            self.statements += 1
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            self._maybe_flush()

    async def close(self) -> None:
        while self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
