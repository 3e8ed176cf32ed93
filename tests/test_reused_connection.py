"""The connection a TaskQueue keeps for one-at-a-time callers: reused while
calls come one after the other, bypassed while busy, handed back to the pool
after an error, a cancellation or close()."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from taskqueue import db
from taskqueue.client import TaskQueue
from taskqueue.errors import TaskStateConflict
from taskqueue.models import NewTask, Status
from tests.helpers import event_types


async def _connection(executor: Any) -> Any:
    return executor


async def _backend_pid(executor: Any) -> int:
    return int(await executor.fetchval("SELECT pg_backend_pid()"))


async def test_calls_one_after_another_run_on_one_backend(pool: asyncpg.Pool) -> None:
    reused = db.ReusedConnection(pool)
    pids = {await reused.run(_backend_pid) for _ in range(5)}
    assert len(pids) == 1
    assert pool.get_size() - pool.get_idle_size() == 1  # kept checked out
    await reused.close()
    assert pool.get_idle_size() == pool.get_size()


async def test_a_call_made_while_busy_goes_through_the_pool(pool: asyncpg.Pool) -> None:
    reused = db.ReusedConnection(pool)
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def hold(executor: Any) -> Any:
        inside.set()
        await leave.wait()
        return executor

    first = asyncio.create_task(reused.run(hold))
    await inside.wait()
    assert await reused.run(_connection) is pool
    leave.set()
    assert not isinstance(await first, asyncpg.Pool)
    await reused.close()


async def test_an_error_hands_the_connection_back_to_the_pool(pool: asyncpg.Pool) -> None:
    reused = db.ReusedConnection(pool)
    before = await reused.run(_connection)

    async def fail(executor: Any) -> None:
        await executor.execute("SELECT 1/0")

    with pytest.raises(asyncpg.DivisionByZeroError):
        await reused.run(fail)
    assert pool.get_idle_size() == pool.get_size()
    after = await reused.run(_connection)
    assert after is not before
    assert await reused.run(_backend_pid) > 0
    await reused.close()


async def test_a_cancelled_call_hands_the_connection_back(pool: asyncpg.Pool) -> None:
    reused = db.ReusedConnection(pool)

    async def slow(executor: Any) -> None:
        await executor.execute("SELECT pg_sleep(30)")

    call = asyncio.create_task(reused.run(slow))

    async def sleeping() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'"
                " AND state = 'active'"
            )
        )

    async with asyncio.timeout(10):
        while not await sleeping():
            await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert pool.get_idle_size() == pool.get_size()
    assert await reused.run(_backend_pid) > 0  # a fresh, working connection
    await reused.close()


async def test_a_taskqueue_that_reuses_its_connection_behaves_the_same(
    pool: asyncpg.Pool,
) -> None:
    tq = TaskQueue(pool, reuse_connection=True)
    task = await tq.enqueue("noop", {"n": 1}, idempotency_key="k-1")
    again = await tq.enqueue("noop", {"n": 2}, idempotency_key="k-1")
    assert again.id == task.id
    many = await tq.enqueue_many([NewTask(type="noop") for _ in range(3)])
    assert len(await tq.list(limit=10)) == 4
    cancelled = await tq.cancel(many[0].id)
    assert cancelled.status is Status.CANCELLED
    with pytest.raises(TaskStateConflict):
        await tq.cancel(many[0].id)
    assert (await tq.retry(many[0].id)).status is Status.QUEUED
    trail = ["task_queued", "task_cancelled", "task_requeued"]
    assert [str(e.event_type) for e in await tq.history(many[0].id)] == trail
    assert await event_types(pool, many[0].id) == trail
    assert (await tq.stats()).queued_tasks == 4
    await tq.close()
    assert pool.is_closing()
