"""queue_states (taskqueue/store/queues.py): one statement for a queue's
state, cheap whatever is asked (finish counts come from queue_counts, kept
by every finishing statement); the live workers counted once each, whatever
queues they serve."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind, Status, TaskFilter
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


async def test_what_finished_lately_is_read_from_the_counts_of_the_last_minute(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop", queue="done") for _ in range(3)])
    await tq.enqueue("noop", queue="other")
    claimed = await store.claim_tasks(pool, ["done"], 3, "w", 30, types=["noop"])
    await store.complete_tasks(
        pool,
        [
            Outcome(task_id=claimed[0].id, attempt=1, kind=OutcomeKind.SUCCEEDED),
            Outcome(task_id=claimed[1].id, attempt=1, kind=OutcomeKind.PERMANENT, error="x"),
            Outcome(task_id=claimed[2].id, attempt=1, kind=OutcomeKind.PERMANENT, error="x"),
        ],
        "w",
    )
    # A retry takes its task back out of the counts; it is not a finish.
    await tq.retry(claimed[2].id)
    # A finish older than the last minute counts in the totals only.
    await pool.execute(
        "INSERT INTO taskqueue.queue_counts (queue, succeeded, at)"
        " VALUES ('done', 5, now() - interval '61 seconds')"
    )
    recent = {
        q.name: (q.finished_last_minute, q.failed_last_minute)
        for q in (await store.queue_states(pool, totals=True)).queues
    }
    assert recent == {"done": (3, 2), "other": (0, 0)}
    cheap = await store.queue_states(pool, "done")
    assert (cheap.queues[0].finished_last_minute, cheap.queues[0].succeeded) == (0, 0)
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
            assert [(q.total, q.finished_last_minute) for q in states.queues] == [(8, 3), (1, 0)]
        finally:
            await transaction.rollback()
    (info,) = [q for q in await tq.queues() if q.name == "done"]
    assert (info.finished_last_minute, info.failed_last_minute) == (3, 2)


async def test_the_cheap_read_never_walks_the_whole_table(pool: asyncpg.Pool) -> None:
    await seed_production_shape(pool, backlog=50, claimed=10)
    for failed, totals in ((False, False), (True, False), (True, True)):
        rows = await pool.fetch(
            f"EXPLAIN {store.query('queue_states')}", None, failed, totals, None, None
        )
        plan = "\n".join(r[0] for r in rows)
        assert "tasks_claim_idx" in plan and "tasks_lease_idx" in plan, plan
        assert "Seq Scan on tasks" not in plan and "task_events" not in plan, plan


async def counts_match_the_rows(pool: asyncpg.Pool) -> None:
    """With nothing pruned or deleted, the finish counters (queue_counts) say
    what counting every row says."""
    counted = {
        q.name: (q.succeeded, q.failed, q.cancelled, q.retries, q.tasks_with_retries, q.total)
        for q in (await store.queue_states(pool, totals=True)).queues
        if q.total
    }
    rows = await pool.fetch(
        "SELECT queue, count(*) FILTER (WHERE status = 'succeeded') AS s,"
        " count(*) FILTER (WHERE status = 'failed') AS f,"
        " count(*) FILTER (WHERE status = 'cancelled') AS c,"
        " coalesce(sum(greatest(attempts - 1, 0)) FILTER (WHERE status IN"
        "   ('succeeded', 'failed', 'cancelled')), 0) AS r,"
        " count(*) FILTER (WHERE attempts > 1 AND status IN"
        "   ('succeeded', 'failed', 'cancelled')) AS w,"
        " count(*) AS t"
        " FROM taskqueue.tasks GROUP BY queue"
    )
    assert counted == {r["queue"]: (r["s"], r["f"], r["c"], r["r"], r["w"], r["t"]) for r in rows}


async def test_finish_counts_follow_every_way_a_task_finishes_or_comes_back(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    async def run(kind: OutcomeKind, n: int = 1) -> list[uuid.UUID]:
        claimed = await store.claim_tasks(pool, ["q"], n, "w", 30, types=["noop"])
        await store.complete_tasks(
            pool, [Outcome(task_id=t.id, attempt=t.attempt, kind=kind) for t in claimed], "w"
        )
        await counts_match_the_rows(pool)
        return [t.id for t in claimed]

    await tq.enqueue_many([NewTask(type="noop", queue="q") for _ in range(3)])
    await run(OutcomeKind.SUCCEEDED)
    await run(OutcomeKind.ERROR)  # retried: due again at once
    await run(OutcomeKind.SUCCEEDED, 2)  # the retried one on its second attempt
    assert (await store.queue_states(pool, "q", totals=True)).queues[0].retries == 1
    await tq.enqueue("noop", queue="q")
    (failed,) = await run(OutcomeKind.PERMANENT)
    # A lease that ran out with no retry left: failed by the rescuer.
    doomed = await tq.enqueue("noop", queue="q", max_retries=0)
    await store.claim_tasks(pool, ["q"], 1, "w", 30, types=["noop"])
    later = await pool.fetchval("SELECT now() + interval '1 minute'")
    assert await store.rescue_expired(pool, "r", now=later) == [(doomed.id, Status.FAILED)]
    await counts_match_the_rows(pool)
    # Cancelled while queued, and while running.
    await tq.cancel((await tq.enqueue("noop", queue="q")).id)
    running = (await tq.enqueue("noop", queue="q")).id
    await store.claim_tasks(pool, ["q"], 1, "w", 30, types=["noop"])
    await tq.cancel(running)
    await counts_match_the_rows(pool)
    # Back to the queue by hand, one and many: no longer counted as finished.
    await tq.retry(failed)
    await counts_match_the_rows(pool)
    await tq.cancel_many(where=TaskFilter(queue="q", status=Status.QUEUED))
    await counts_match_the_rows(pool)
    await tq.retry_many(where=TaskFilter(queue="q", status=Status.CANCELLED))
    await counts_match_the_rows(pool)
    await tq.retry_many(where=TaskFilter(queue="q", status=Status.FAILED))
    await counts_match_the_rows(pool)
    (q,) = (await store.queue_states(pool, "q", totals=True)).queues
    assert (q.succeeded, q.failed, q.cancelled, q.queued, q.total) == (3, 0, 0, 4, 7)
    later = await pool.fetchval("SELECT now() + interval '61 seconds'")
    assert await store.fold_queue_counts(pool, later) > 0
    await counts_match_the_rows(pool)


async def test_finish_counts_add_up_across_concurrent_completions(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop", queue="q") for _ in range(200)])
    batches = [
        await store.claim_tasks(pool, ["q"], 20, f"w{i}", 30, types=["noop"]) for i in range(10)
    ]
    kinds = [OutcomeKind.SUCCEEDED, OutcomeKind.PERMANENT]

    async def complete(i: int) -> None:
        outcomes = [
            Outcome(task_id=t.id, attempt=1, kind=kinds[n % 2]) for n, t in enumerate(batches[i])
        ]
        await store.complete_tasks(pool, outcomes, f"w{i}")

    later = await pool.fetchval("SELECT now() + interval '61 seconds'")  # folds every row
    await asyncio.gather(*(complete(i) for i in range(10)), store.fold_queue_counts(pool, later))
    await counts_match_the_rows(pool)
    (q,) = (await store.queue_states(pool, "q", totals=True)).queues
    assert (q.succeeded, q.failed) == (100, 100)
