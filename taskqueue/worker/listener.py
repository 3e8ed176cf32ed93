"""Holds the LISTEN connection: enqueue NOTIFYs become dispatcher wakeups,
and control messages naming this worker (cancel a running task) go to the
process. Reconnects (then re-LISTENs) when the connection drops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

import msgspec

from taskqueue import db, store
from taskqueue.retrying import ReconnectDelay, is_transient

APPLICATION_NAME = "taskqueue-worker-listen"

logger = logging.getLogger("taskqueue.listener")


class ControlMessage(msgspec.Struct):
    """A message on the control channel: ``cancel`` names tasks running on
    the worker ``worker`` that an operator cancelled; ``queue_settings``
    names a queue whose pause or limits changed (for every worker);
    ``tenant_settings`` a tenant whose rate limit on starts changed (for
    every worker: a tenant's tasks may be in any queue)."""

    worker: str | None = None
    cancel: list[uuid.UUID] = msgspec.field(default_factory=list)
    queue_settings: str | None = None
    tenant_settings: str | None = None


_decode_control = msgspec.json.Decoder(ControlMessage).decode


class Listener:
    def __init__(
        self,
        dsn: str,
        queues: tuple[str, ...],
        wake: Callable[[], None],
        *,
        worker_id: str = "",
        cancel: Callable[[uuid.UUID], object] | None = None,
        settings_changed: Callable[[], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self._queues = frozenset(queues)
        self._wake = wake
        self._worker_id = worker_id
        self._cancel = cancel
        self._settings_changed = settings_changed
        self._stopping = asyncio.Event()
        self.connected = asyncio.Event()
        self.reconnects = 0  # LISTEN connections lost, or that could not be opened

    def readings(self) -> dict[str, int]:
        """What it has counted: LISTEN connections lost or not opened."""
        return {"reconnects": self.reconnects}

    def _on_notify(self, payload: str) -> None:
        if payload == "*" or not self._queues.isdisjoint(payload.split(",")):
            self._wake()

    def _on_control(self, payload: str) -> None:
        try:
            message = _decode_control(payload)
        except msgspec.DecodeError:
            logger.warning("ignoring a malformed control message")
            return
        if message.worker == self._worker_id and self._cancel is not None:
            for task_id in message.cancel:
                self._cancel(task_id)
        changed = message.queue_settings in self._queues or message.tenant_settings is not None
        if changed and self._settings_changed is not None:
            self._settings_changed()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        retry = ReconnectDelay(first=0.1)
        while not self._stopping.is_set():
            lost = asyncio.Event()
            try:
                conn = await db.connect(
                    self._dsn,
                    timeout=10,
                    server_settings={"application_name": APPLICATION_NAME},
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.reconnects += 1
                delay = retry.next_delay()
                logger.warning("cannot LISTEN (%s); retrying in %.2fs", type(exc).__name__, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            try:
                conn.add_termination_listener(_setter(lost))
                await store.listen(conn, self._on_notify)
                await store.listen_control(conn, self._on_control)
                retry.reset()
                self.connected.set()
                # Tasks may have arrived, or settings changed, while we were not listening.
                self._wake()
                if self._settings_changed is not None:
                    self._settings_changed()
                while not (lost.is_set() or self._stopping.is_set()):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(_first_of(lost, self._stopping), 5.0)
                    if conn.is_closed():  # closed without telling us
                        lost.set()
                if lost.is_set():
                    self.reconnects += 1
                    logger.warning("LISTEN connection lost; reconnecting")
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.reconnects += 1
                logger.warning("LISTEN failed (%s); reconnecting", type(exc).__name__)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
