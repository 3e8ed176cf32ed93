"""Per-key concurrency (migration 0014_claim_keys): with a queue's
per_key_concurrency set, the claim statement starts a task with a
concurrency_key only while fewer than that many of the key run, across
workers; keyless tasks and other keys are not held back. Driven through
the real claim statement and by real worker processes."""

from __future__ import annotations

import itertools
from pathlib import Path

import asyncpg

from taskqueue import store
from taskqueue.benchmark import store as bench_store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.helpers import run_audit, worker_process
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


async def test_a_key_is_counted_per_tenant(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    # 0026_keys_per_tenant: one tenant's running tasks of a key leave the
    # other tenant's slots of the same key free.
    await tq.set_limits("default", per_key=1)
    await tq.submit(
        [
            NewTask(type="noop", name="a1", concurrency_key="k", tenant="a"),
            NewTask(type="noop", name="a2", concurrency_key="k", tenant="a"),
        ]
    )
    assert await claim(pool) == ["a1"]
    await tq.submit([NewTask(type="noop", name="b1", concurrency_key="k", tenant="b")])
    assert await claim(pool, "other") == ["b1"]
    assert await claim(pool, "third") == []  # a2 waits for a1, b's limit is full too


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


async def test_worker_processes_never_run_two_tasks_of_a_key_at_once(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    await tq.set_limits("keys", per_key=1)
    keys, per_key = 8, 12
    producer = TaskQueue(pool, registry=None)  # bench_keyed is the workers' type
    await producer.submit(
        [
            NewTask(
                type="bench_keyed", queue="keys", concurrency_key=f"k{i % keys}", payload={"ms": 10}
            )
            for i in range(keys * per_key)
        ]
    )
    env = {"queues": "keys", "handlers": "taskqueue.benchmark.handlers", "concurrency": "10"}
    log = tmp_path / "workers.log"
    peak = 0
    async with (
        worker_process(database_url, log, **env),
        worker_process(database_url, log, **env),
        worker_process(database_url, log, **env),
    ):
        while await bench_store.unfinished_tasks(pool) > 0:
            peak = max(peak, await bench_store.key_peak(pool, "keys"))
    assert peak == 1  # sampled while draining
    # And from the history: no two running spans of a key overlap. Ordered by
    # event id, not time: an event's time is its transaction's start, and a
    # claim that waited for its key's lock, then saw the end commit, carries
    # an earlier time than that end; event ids are drawn when written.
    spans = await pool.fetch(
        "SELECT t.concurrency_key AS key, s.id AS started,"
        " (SELECT min(x.id) FROM taskqueue.task_events x"
        "  WHERE x.task_id = s.task_id AND x.id > s.id) AS ended"
        " FROM taskqueue.tasks t JOIN taskqueue.task_events s"
        " ON s.task_id = t.id AND s.event_type = 'task_started'"
        " ORDER BY t.concurrency_key, s.id"
    )
    assert len(spans) == keys * per_key
    for before, after in itertools.pairwise(spans):
        if before["key"] == after["key"]:
            assert after["started"] > before["ended"]
    assert await run_audit(pool) == []
