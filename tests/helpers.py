"""Shared test helpers: run a worker in-process, poll with a deadline, read events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from taskqueue import store
from taskqueue.config import Settings
from taskqueue.registry import Registry, load_registry
from taskqueue.worker import Worker

# Quick loops so that tests finish fast; the logic is the same as in production.
FAST = {
    "poll_interval": 0.05,
    "complete_interval": 0.001,
    "backoff_base": 0.01,
    "backoff_cap": 0.05,
}


@asynccontextmanager
async def running_worker(
    database_url: str, registry: Registry | None = None, **overrides: Any
) -> AsyncIterator[Worker]:
    settings = Settings(database_url=database_url, **{**FAST, **overrides})
    worker = Worker(settings, registry or load_registry([]))
    task = asyncio.create_task(worker.run())
    started = asyncio.ensure_future(worker.started.wait())
    done, _ = await asyncio.wait([task, started], timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        started.cancel()
        task.result()  # re-raise why it died
    assert worker.started.is_set(), "worker did not start within 15s"
    try:
        yield worker
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 60)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, interval: float = 0.02
) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def event_types(pool: asyncpg.Pool, task_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT event_type FROM taskqueue.task_events WHERE task_id = $1 ORDER BY id", task_id
    )
    return [r["event_type"] for r in rows]


async def status_of(pool: asyncpg.Pool, task_id: uuid.UUID) -> str:
    return str(await pool.fetchval("SELECT status FROM taskqueue.tasks WHERE id = $1", task_id))


async def all_in_status(pool: asyncpg.Pool, ids: list[uuid.UUID], status: str) -> bool:
    count = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.tasks WHERE id = ANY($1) AND status = $2", ids, status
    )
    return bool(count == len(ids))


async def seed_production_shape(pool: asyncpg.Pool, *, backlog: int, claimed: int) -> None:
    """A tasks table the way production sees it: 20,000 finished tasks, a
    queued backlog, ``claimed`` of it running; analysed, so plans are real."""
    await pool.execute(
        "INSERT INTO taskqueue.tasks (id, type, status, completed_at)"
        " SELECT gen_random_uuid(), 'noop', 'succeeded', now() FROM generate_series(1, 20000)"
    )
    await pool.execute(
        "INSERT INTO taskqueue.tasks (id, type) SELECT gen_random_uuid(), 'noop'"
        " FROM generate_series(1, $1)",
        backlog,
    )
    await store.claim_tasks(pool, ["default"], claimed, "worker-1", 30, types=["noop"])
    await pool.execute("ANALYZE taskqueue.tasks")
