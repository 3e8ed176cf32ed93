"""The worker registry (register, heartbeat, list) and the database's own
liveness: a ping and the migrations it has applied."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from taskqueue.models import (
    WorkerInfo,
)
from taskqueue.store._sql import Executor, query


async def register_worker(
    conn: Executor,
    worker_id: str,
    *,
    host: str,
    pid: int,
    queues: Sequence[str],
    types: Sequence[str],
    concurrency: int,
    version: str,
    heartbeat_seconds: float,
) -> None:
    await conn.execute(
        query("register_worker"),
        worker_id,
        host,
        pid,
        list(queues),
        list(types),
        concurrency,
        version,
        heartbeat_seconds,
    )


async def heartbeat_worker(
    conn: Executor, worker_id: str, in_flight: int, state: str, prune_after: float
) -> None:
    await conn.execute(query("heartbeat_worker"), worker_id, in_flight, state, prune_after)


async def ping(conn: Executor) -> None:
    await conn.execute(query("ping"))


async def backend_pid(conn: Executor) -> int:
    return int(await conn.fetchval(query("backend_pid")))


async def applied_migrations(conn: Executor) -> list[str]:
    """Migration ids yoyo has recorded; empty when yoyo never ran here."""
    try:
        records = await conn.fetch(query("applied_migrations"))
    except asyncpg.UndefinedTableError:
        return []
    return [r["migration_id"] for r in records]


async def list_workers(
    conn: Executor, *, offset: int = 0, limit: int | None = None
) -> list[WorkerInfo]:
    records = await conn.fetch(query("list_workers"), offset, limit)
    return [WorkerInfo(**dict(r.items())) for r in records]
