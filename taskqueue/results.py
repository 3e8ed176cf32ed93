"""Waiting for a task's result without polling: one LISTEN on the
taskqueue_done channel per process (the API's, or a ``TaskQueue``'s), fanned
out in memory to every waiter by task id.

The statements that end tasks send their ids on that channel
(_task_ended.sql). A waiter registers first, makes sure the LISTEN is up,
then reads the row once: a task that ended before the LISTEN began is seen
by that read, one that ends after it by the notification. After a wakeup, or
when the wait runs out, it reads the row once more. A lost connection wakes
every waiter (they read again) and is opened again while anyone waits; the
connection is closed once nobody has waited for ``linger`` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from taskqueue import store
from taskqueue.db import Runner
from taskqueue.errors import InvalidArgument, TaskNotFound
from taskqueue.models import Status, Task
from taskqueue.retrying import ReconnectDelay, is_transient

logger = logging.getLogger("taskqueue.results")

MAX_PYTHON_WAIT_SECONDS = 86400  # TaskQueue.result(timeout=)
TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.EXPIRED})

Open = Callable[[], Awaitable[store.Connection]]
Close = Callable[[store.Connection], Awaitable[None]]


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()


class ResultWaiters:
    """``open``/``close``: how to get and give back the listening connection
    (a connection of its own, or one borrowed from a pool)."""

    def __init__(
        self,
        open: Open,
        close: Close,
        *,
        linger: float = 10.0,
        recheck: Callable[[], float | None] | None = None,
    ) -> None:
        self._open = open
        self._close = close
        self._linger = linger
        # Seconds between a waiter's reads when no notification can arrive
        # (LISTEN through a transaction pooler), asked after each read;
        # None: woken by notifications alone.
        self._recheck = recheck
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._connected = asyncio.Event()
        self._closing = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self.notifications = 0  # payloads received
        self.reconnects = 0

    @classmethod
    def on_pool(cls, pool: asyncpg.Pool) -> ResultWaiters:
        """Waiters listening on a connection borrowed from ``pool`` while
        anyone waits (a ``TaskQueue``'s), given back a second after the last."""

        async def borrow() -> store.Connection:
            conn: store.Connection = await pool.acquire()
            return conn

        async def give_back(conn: store.Connection) -> None:
            await pool.release(cast(PoolConnectionProxy, conn))

        return cls(borrow, give_back, linger=1.0)

    @property
    def waiting(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    async def wait(
        self,
        task_id: uuid.UUID,
        timeout: float,  # noqa: ASYNC109 - the waiter's own deadline, read as one
        read: Callable[[], Awaitable[Task | None]],
    ) -> Task | None:
        """The task once it has ended, or as it is when ``timeout`` runs out
        (None: no such task)."""
        event = asyncio.Event()
        self._waiters.setdefault(task_id, set()).add(event)
        deadline = time.monotonic() + timeout
        try:
            await self._ensure_listening(deadline)
            while True:
                event.clear()
                task = await read()
                remaining = deadline - time.monotonic()
                if task is None or task.status in TERMINAL or remaining <= 0:
                    return task
                recheck = self._recheck() if self._recheck is not None else None
                if recheck is not None:
                    remaining = min(remaining, recheck)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
        finally:
            events = self._waiters.get(task_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[task_id]

    async def close(self) -> None:
        self._closing.set()
        self._wake_all()
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)

    def _on_done(self, payload: str) -> None:
        self.notifications += 1
        for raw in payload.split(","):
            try:
                task_id = uuid.UUID(raw)
            except ValueError:
                continue
            for event in self._waiters.get(task_id, ()):
                event.set()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def _ensure_listening(self, deadline: float) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="result waiters")
        # Until the LISTEN is up a notification could be missed; past the
        # deadline the waiter reads the row once anyway.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), max(deadline - time.monotonic(), 0))

    async def _run(self) -> None:
        retry = ReconnectDelay(first=0.1)
        while not self._closing.is_set() and self._waiters:
            lost = asyncio.Event()
            stop: Callable[[], Awaitable[None]] | None = None
            try:
                conn = await self._open()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.reconnects += 1
                await asyncio.sleep(retry.next_delay())
                continue
            try:
                conn.add_termination_listener(_setter(lost))
                stop = await store.listen_done(conn, self._on_done)
                retry.reset()
                self._connected.set()
                self._wake_all()  # anything that ended while we were not listening
                idle_since: float | None = None
                while not (lost.is_set() or self._closing.is_set()):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 1.0)
                    if conn.is_closed():
                        lost.set()
                    if self._waiters:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since >= self._linger:
                        break
                if lost.is_set():
                    self.reconnects += 1
                    logger.warning("result LISTEN connection lost; reconnecting")
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.reconnects += 1
            finally:
                self._connected.clear()
                self._wake_all()
                with contextlib.suppress(Exception):
                    if stop is not None and not conn.is_closed():
                        await asyncio.wait_for(stop(), 2)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._close(conn), 2)


class PoolResults:
    """``TaskQueue.result``: waiters on a connection borrowed from the
    TaskQueue's pool (made on the first wait, given back a second after the
    last), reading rows through its runner."""

    def __init__(self, pool: asyncpg.Pool, db: Runner) -> None:
        self._pool = pool
        self._db = db
        self._waiters: ResultWaiters | None = None

    async def wait_for(self, task_id: uuid.UUID, timeout: float) -> Task:  # noqa: ASYNC109
        if type(timeout) not in (int, float) or not 0 <= timeout <= MAX_PYTHON_WAIT_SECONDS:
            raise InvalidArgument(
                "timeout", f"a number of seconds from 0 to {MAX_PYTHON_WAIT_SECONDS}"
            )
        if self._waiters is None:
            self._waiters = ResultWaiters.on_pool(self._pool)
        task = await self._waiters.wait(
            task_id, float(timeout), lambda: self._db.run(store.get_task, task_id)
        )
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def close(self) -> None:
        if self._waiters is not None:
            await self._waiters.close()
