"""Coalesces concurrent single-task inserts into one statement.

Each POST /api/tasks waits for the statement that carries its row to commit,
so a 201 still means the row and its event are committed; meanwhile requests
that arrive while a statement is in flight ride the next one together. Under
load this turns N commits into one, without adding latency when idle (the
first request is sent at once).

One request's bad row must not fail the others that share its statement.
Requests are validated before they get here, so that nothing PostgreSQL
would refuse reaches a statement; should a grouped statement fail anyway
(for any reason but an unreachable database), the group is split in halves
and each half retried, down to the offending request alone, which gets the
error while every other request gets its row."""

from __future__ import annotations

import asyncio

from taskqueue import store
from taskqueue.enqueue import Insert
from taskqueue.http.errors import database_unavailable
from taskqueue.models import Enqueued

Waiter = tuple[store.TaskRow, asyncio.Future[Enqueued]]


class GroupCommitter:
    def __init__(self, insert: Insert, *, max_batch: int = 500, max_in_flight: int = 2) -> None:
        self._insert = insert
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._waiting: list[Waiter] = []
        self._in_flight = 0
        self._flushes: set[asyncio.Task[None]] = set()
        self.statements = 0  # how many statements carried inserts (for tests and stats)
        self.splits = 0  # how often a failed group was split to isolate a bad row

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

    async def _flush(self, batch: list[Waiter]) -> None:
        try:
            await self._insert_isolating(batch)
        finally:
            self._in_flight -= 1
            self._maybe_flush()

    async def _insert_isolating(self, batch: list[Waiter]) -> None:
        try:
            results = await self._insert([row for row, _ in batch])
            self.statements += 1
        except Exception as exc:
            if len(batch) > 1 and not database_unavailable(exc):
                # A statement fails whole: find the offender by halves, so
                # that a poisoned row costs about 2·log2(n) extra statements.
                self.splits += 1
                middle = len(batch) // 2
                await self._insert_isolating(batch[:middle])
                await self._insert_isolating(batch[middle:])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        while self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
