"""The streams readers follow (task events, operator actions), the audit
trails, and LISTEN/NOTIFY: enqueue wakeups and control messages to workers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from taskqueue.models import (
    OperatorAction,
    StreamEvent,
)
from taskqueue.store._sql import Connection, Executor, query

NOTIFY_CHANNEL = "taskqueue"
CONTROL_CHANNEL = "taskqueue_control"  # messages to one worker: {"worker", "cancel"}
DONE_CHANNEL = "taskqueue_done"  # ids of tasks that just ended, comma-separated (_task_ended.sql)


async def listen(conn: Connection, callback: Callable[[str], None]) -> None:
    """LISTEN for enqueue wakeups; ``callback`` gets the payload (queue names)."""

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        callback(str(payload))

    await conn.add_listener(NOTIFY_CHANNEL, on_notify)


async def listen_control(conn: Connection, callback: Callable[[str], None]) -> None:
    """LISTEN for control messages (JSON) addressed to workers."""

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        callback(str(payload))

    await conn.add_listener(CONTROL_CHANNEL, on_notify)


async def listen_done(
    conn: Connection, callback: Callable[[str], None]
) -> Callable[[], Awaitable[None]]:
    """LISTEN for tasks that ended; ``callback`` gets comma-separated ids.
    Returns what UNLISTENs again (before a borrowed connection goes back)."""

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        callback(str(payload))

    await conn.add_listener(DONE_CHANNEL, on_notify)

    async def stop() -> None:
        await conn.remove_listener(DONE_CHANNEL, on_notify)

    return stop


async def audit_trails(
    conn: Connection, since: datetime | None, *, batch: int = 5000
) -> AsyncIterator[asyncpg.Record]:
    """Stream every event trail (see audit_trails.sql) through a cursor;
    ``conn`` must be a connection in a transaction."""
    async for record in conn.cursor(query("audit_trails"), since, prefetch=batch):
        yield record


async def list_actions(
    conn: Executor, *, before_id: int | None = None, limit: int = 100
) -> list[OperatorAction]:
    records = await conn.fetch(query("list_actions"), before_id, limit)
    return [OperatorAction(**dict(r.items())) for r in records]


async def events_after(conn: Executor, after_id: int, limit: int = 1000) -> list[StreamEvent]:
    records = await conn.fetch(query("events_after"), after_id, limit)
    return [StreamEvent(**dict(r.items())) for r in records]


async def last_event_id(conn: Executor) -> int:
    return int(await conn.fetchval(query("last_event_id")))


async def events_by_id(conn: Executor, ids: Sequence[int]) -> list[StreamEvent]:
    records = await conn.fetch(query("events_by_id"), list(ids))
    return [StreamEvent(**dict(r.items())) for r in records]


async def actions_after(conn: Executor, after_id: int) -> list[OperatorAction]:
    records = await conn.fetch(query("actions_after"), after_id)
    return [OperatorAction(**dict(r.items())) for r in records]


async def last_action_id(conn: Executor) -> int:
    return int(await conn.fetchval(query("last_action_id")))
