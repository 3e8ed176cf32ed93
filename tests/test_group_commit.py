"""Group commit: concurrent single inserts share statements, and one row
PostgreSQL refuses fails alone while every other row in its group commits."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec

from taskqueue import db
from taskqueue.api.group_commit import GroupCommitter
from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidTask
from taskqueue.models import Enqueued, NewTask
from tests.api_helpers import free_port


async def test_a_row_postgresql_refuses_fails_alone(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    committer = GroupCommitter(tq.insert, max_batch=100, max_in_flight=1)
    rows = tq.prepare([NewTask(type="noop", name=f"ok-{i}") for i in range(40)])
    # Past prepare(), as a validation gap would let it through: PostgreSQL
    # refuses NUL in text, and so the whole statement carrying it.
    rows[17] = msgspec.structs.replace(rows[17], name="bad\x00")
    rows[30] = msgspec.structs.replace(rows[30], queue="q\x00")
    results = await asyncio.gather(*(committer.submit(r) for r in rows), return_exceptions=True)
    await committer.close()

    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [17, 30]
    for i in failed:
        assert isinstance(results[i], InvalidTask)
        assert "PostgreSQL refused it" in str(results[i])
    created = [r for r in results if isinstance(r, Enqueued)]
    assert len(created) == 38 and all(r.created for r in created)
    names = {r["name"] for r in await pool.fetch("SELECT name FROM taskqueue.tasks")}
    assert names == {f"ok-{i}" for i in range(40)} - {"ok-17", "ok-30"}
    assert committer.splits > 0
    # the first row alone, then the 39 that gathered meanwhile, split by halves
    assert committer.statements < 40


async def test_concurrent_rows_share_one_statement(tq: TaskQueue) -> None:
    committer = GroupCommitter(tq.insert, max_batch=100, max_in_flight=1)
    rows = tq.prepare([NewTask(type="noop") for _ in range(50)])
    results = await asyncio.gather(*(committer.submit(r) for r in rows))
    await committer.close()
    assert len(results) == 50 and committer.splits == 0
    assert committer.statements == 2  # the first at once, the other 49 together


async def test_an_unreachable_database_fails_the_group_without_splitting(tq: TaskQueue) -> None:
    nowhere = await db.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/none", min_size=0, timeout=2
    )
    try:
        down = TaskQueue(nowhere)
        committer = GroupCommitter(down.insert, max_batch=100, max_in_flight=1)
        rows = tq.prepare([NewTask(type="noop") for _ in range(10)])
        results = await asyncio.gather(*(committer.submit(r) for r in rows), return_exceptions=True)
        await committer.close()
    finally:
        await nowhere.close()
    assert all(isinstance(r, OSError) for r in results), results
    assert committer.splits == 0
