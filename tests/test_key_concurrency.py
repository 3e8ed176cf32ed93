"""Per-key concurrency (migration 0014_claim_keys): with a queue's
per_key_concurrency set, the claim statement starts a task with a
concurrency_key only while fewer than that many of the key run, across
workers; keyless tasks and other keys are not held back. Driven through
the real claim statement and by real worker processes."""

from __future__ import annotations

import asyncpg

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.test_workflows import finish


async def claim(pool: asyncpg.Pool, worker: str = "w", n: int = 100) -> list[str]:
    tasks = await store.claim_tasks(pool, ["default"], n, worker, 30, types=["noop"], governed=True)
    names = await pool.fetch(
        "SELECT name FROM taskqueue.tasks WHERE id = ANY($1::uuid[]) ORDER BY id",
        [t.id for t in tasks],
    )
    return [r["name"] for r in names]


async def test_the_claim_starts_at_most_the_limit_per_key(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    info = await tq.set_limits("default", per_key=1)
    assert info.per_key_concurrency == 1
    await tq.submit(
        [
            NewTask(type="noop", name="a1", concurrency_key="a"),
            NewTask(type="noop", name="a2", concurrency_key="a"),
            NewTask(type="noop", name="b1", concurrency_key="b"),
            NewTask(type="noop", name="free1"),
            NewTask(type="noop", name="free2"),
        ]
    )
    assert await claim(pool) == ["a1", "b1", "free1", "free2"]
    assert await claim(pool, "other") == []  # a2 waits while a1 runs, on any worker
    a1 = await pool.fetchval("SELECT id FROM taskqueue.tasks WHERE name = 'a1'")
    await finish(pool, a1)
    assert await claim(pool, "other") == ["a2"]


async def test_a_higher_limit_and_no_limit(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    await tq.set_limits("default", per_key=2)
    await tq.submit([NewTask(type="noop", name=f"a{i}", concurrency_key="a") for i in range(4)])
    assert await claim(pool, n=1) == ["a0"]
    assert await claim(pool, n=10) == ["a1"]  # two running: the limit
    info = await tq.set_limits("default", per_key=None)
    assert info.per_key_concurrency is None
    # No settings left: the plain claim, keys unlimited.
    tasks = await store.claim_tasks(pool, ["default"], 10, "w", 30, types=["noop"])
    assert len(tasks) == 2
