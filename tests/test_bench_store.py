"""The benchmark's own statements (taskqueue/benchmark/store.py): emptying
the queue between measurements gives way to a worker's statement that holds
one of its tables, instead of deadlocking with it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from taskqueue.benchmark import store as bench_store
from taskqueue.client import TaskQueue
from tests.helpers import wait_until


async def _truncate_waits(pool: asyncpg.Pool) -> bool:
    found = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND query LIKE '%TRUNCATE taskqueue.tasks%'"
        " AND datname = current_database()"
    )
    return bool(found)


async def test_a_reset_gives_way_to_a_statement_holding_history_then_waiting_for_tasks(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    async with pool.acquire() as worker:
        # What a worker's lane keeper does in one statement (its catch reads
        # task_events, then tasks), here in two, with the reset in between.
        transaction = worker.transaction()
        await transaction.start()
        await worker.fetchval("SELECT count(*) FROM taskqueue.task_events")
        # One try gives up within its lock timeout, before the server's
        # deadlock check (1 s) could pick the worker's statement as victim.
        with pytest.raises(asyncpg.LockNotAvailableError):
            await asyncio.wait_for(pool.execute(bench_store.query("reset")), 5)
        resetting = asyncio.create_task(bench_store.reset(pool))
        await wait_until(lambda: _truncate_waits(pool), timeout=10)
        # Before the fix this could wait for a TRUNCATE that held tasks and
        # waited for task_events: a deadlock, one of the two ended by it.
        assert await worker.fetchval("SELECT count(*) FROM taskqueue.tasks") == 1
        assert not resetting.done()
        await transaction.commit()
        await asyncio.wait_for(resetting, 30)
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.task_events") == 0
