"""queue_states (taskqueue/store/queues.py): one statement for a queue's
state, cheap unless the whole-table totals are asked for; the live workers
counted once each, whatever queues they serve."""

from __future__ import annotations

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind
from tests.helpers import seed_production_shape


async def register(pool: asyncpg.Pool, worker_id: str, queues: list[str]) -> None:
    await store.register_worker(
        pool,
        worker_id,
        host="h",
        pid=1,
        queues=queues,
        types=["noop"],
        concurrency=1,
        version="0",
        heartbeat_seconds=5,
    )


async def test_nothing_to_read_is_no_queue_and_no_worker(pool: asyncpg.Pool) -> None:
    states = await store.queue_states(pool, totals=True)
    assert states.queues == [] and states.live_workers == 0 and states.due == 0


async def test_each_caller_gets_the_fields_it_asks_for(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    await tq.enqueue_many([NewTask(type="noop", queue="a") for _ in range(3)])
    await tq.enqueue("noop", queue="a", delay=3600)
    await tq.enqueue_many([NewTask(type="noop", queue="done") for _ in range(2)])
    claimed = await store.claim_tasks(pool, ["done"], 2, "w", 30, types=["noop"])
    await store.complete_tasks(
        pool,
        [
            Outcome(task_id=claimed[0].id, attempt=1, kind=OutcomeKind.SUCCEEDED),
            Outcome(task_id=claimed[1].id, attempt=1, kind=OutcomeKind.PERMANENT, error="x"),
        ],
        "w",
    )
    await register(pool, "w1", ["a", "idle"])
    await register(pool, "w2", ["a"])

    cheap = await store.queue_states(pool)
    assert [q.name for q in cheap.queues] == ["a", "idle"]  # "done" holds only finished tasks
    a = cheap.queues[0]
    assert (a.queued, a.due, a.scheduled, a.running, a.workers) == (4, 3, 1, 0, 2)
    assert (a.failed, a.total, a.succeeded) == (0, 0, 0)  # not asked for
    assert cheap.live_workers == 2 and cheap.due == 3

    dashboard = await store.queue_states(pool, failed=True)
    assert [(q.name, q.failed) for q in dashboard.queues] == [("a", 0), ("done", 1), ("idle", 0)]

    full = await store.queue_states(pool, "done", totals=True)
    (done,) = full.queues
    assert (done.total, done.succeeded, done.failed, full.live_workers) == (2, 1, 1, 2)
    assert [q.queue for q in full.stats().queues] == ["done"]
    with pytest.raises(ValueError, match="totals"):
        cheap.stats()  # it would describe every task as none


async def test_what_finished_lately_is_read_from_the_history_on_its_own(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop", queue="done") for _ in range(2)])
    await tq.enqueue("noop", queue="other")
    claimed = await store.claim_tasks(pool, ["done"], 2, "w", 30, types=["noop"])
    await store.complete_tasks(
        pool,
        [
            Outcome(task_id=claimed[0].id, attempt=1, kind=OutcomeKind.SUCCEEDED),
            Outcome(task_id=claimed[1].id, attempt=1, kind=OutcomeKind.PERMANENT, error="x"),
        ],
        "w",
    )
    assert await store.recent_outcomes(pool) == {"done": (2, 1)}
    assert await store.recent_outcomes(pool, "other") == {}
    # The read model of a queue's state reads no history: a role that may
    # read tasks but not task_events (as the worker's role) can read it.
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(
                "CREATE ROLE tq_no_history NOLOGIN;"
                " GRANT USAGE ON SCHEMA taskqueue TO tq_no_history;"
                " GRANT SELECT ON taskqueue.tasks, taskqueue.queues, taskqueue.workers,"
                " taskqueue.queue_retention, taskqueue.queue_counts TO tq_no_history;"
                " SET LOCAL ROLE tq_no_history"
            )
            states = await store.queue_states(conn, totals=True)
            assert [q.total for q in states.queues] == [2, 1]
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await store.recent_outcomes(conn)
        finally:
            await transaction.rollback()
    (info,) = [q for q in await tq.queues() if q.name == "done"]
    assert (info.finished_last_minute, info.failed_last_minute) == (2, 1)


async def test_the_cheap_read_never_walks_the_whole_table(pool: asyncpg.Pool) -> None:
    await seed_production_shape(pool, backlog=50, claimed=10)
    for failed in (False, True):
        rows = await pool.fetch(f"EXPLAIN {store.query('queue_states')}", None, failed, False)
        plan = "\n".join(r[0] for r in rows)
        assert "tasks_claim_idx" in plan and "tasks_lease_idx" in plan, plan
        assert "Seq Scan on tasks" not in plan and "task_events" not in plan, plan
