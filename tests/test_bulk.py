"""The dead-letter view and bulk actions: failures grouped by error, retry,
cancel (running tasks too, stopped by their worker within a second) and
delete, one statement per chunk, each change with its event, each action in
the operator log."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidArgument
from taskqueue.models import NewTask, Outcome, OutcomeKind, Status, TaskFilter
from taskqueue.registry import Registry, TaskContext
from tests.helpers import all_in_status, run_audit, running_worker, wait_until


async def fail_tasks(pool: asyncpg.Pool, errors: list[str], *, queue: str = "default") -> None:
    """Tasks that failed for good with these errors, the way a worker records it."""
    producer = TaskQueue(pool, registry=None)
    await producer.enqueue_many([NewTask(type="charge", queue=queue) for _ in errors])
    claimed = await store.claim_tasks(pool, [queue], len(errors), "w", 30, types=["charge"])
    outcomes = [
        Outcome(task_id=task.id, attempt=1, kind=OutcomeKind.PERMANENT, error=error)
        for task, error in zip(claimed, errors, strict=True)
    ]
    await store.complete_tasks(pool, outcomes, "w")


async def test_failures_group_by_queue_type_and_error_with_numbers_and_ids_masked(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await fail_tasks(
        pool,
        [f"OrderMissing: order {n} not found\n  at line {n}" for n in (17, 42, 99)]
        + [f"Timeout: upstream {uuid.uuid4()} took {n}.5s" for n in (3, 8)]
        + ["KeyError: 'customer'"],
    )
    await fail_tasks(pool, ["OrderMissing: order 5 not found"], queue="billing")
    groups = await tq.failures()
    assert [(g.queue, g.error, g.count) for g in groups] == [
        ("default", "OrderMissing: order <n> not found", 3),
        ("default", "Timeout: upstream <id> took <n>s", 2),
        ("billing", "OrderMissing: order <n> not found", 1),
        ("default", "KeyError: <value>", 1),
    ]
    first = groups[0]
    assert first.first_failed_at <= first.last_failed_at
    assert (await tq.get(first.sample_task_id)).status == "failed"
    assert [g.queue for g in await tq.failures(queue="billing")] == ["billing"]
    assert (
        await tq.failures(
            since=first.last_failed_at + (first.last_failed_at - first.last_failed_at)
        )
        != []
    )


async def test_bulk_retry_of_five_thousand_failures_is_one_statement_with_an_event_each(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await fail_tasks(pool, [f"Boom: #{n}" for n in range(5000)])
    await fail_tasks(pool, ["Other: x"] * 10)
    result = await tq.retry_many(where=TaskFilter(status=Status.FAILED, error="Boom: #<n>"))
    assert (result.matched, result.changed, result.next) == (5000, 5000, None)
    # One transaction wrote every change and every event: one statement.
    writers = await pool.fetchval(
        "SELECT count(DISTINCT xmin::text) FROM ("
        " SELECT xmin FROM taskqueue.tasks WHERE status = 'queued'"
        " UNION ALL SELECT xmin FROM taskqueue.task_events WHERE event_type = 'task_requeued'"
        " UNION ALL SELECT xmin FROM taskqueue.operator_actions) AS written"
    )
    assert writers == 1
    requeued = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.task_events WHERE event_type = 'task_requeued'"
    )
    assert requeued == 5000
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM taskqueue.tasks WHERE status = 'queued' AND attempts = 0"
        )
        == 5000
    )
    assert [g.count for g in await tq.failures()] == [10]
    logged = (await tq.actions(limit=1))[0]
    assert (logged.action, logged.result) == ("retry", {"matched": 5000, "changed": 5000})
    assert logged.scope["filter"]["error"] == "Boom: #<n>"
    assert await run_audit(pool) == []


async def test_bulk_actions_go_in_chunks_and_by_ids(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    await fail_tasks(pool, [f"E{n}" for n in range(25)])
    every = TaskFilter(status=Status.FAILED)
    first = await tq.retry_many(where=every, limit=10)
    assert (first.matched, first.changed) == (10, 10)
    assert first.next is not None
    second = await tq.retry_many(where=every, after=first.next, limit=10)
    third = await tq.retry_many(where=every, after=second.next, limit=10)
    assert (second.changed, third.changed, third.next) == (10, 5, None)
    queued = await tq.list(status="queued")
    # By ids: only what may change does; the rest is matched and left alone.
    done = await tq.enqueue("noop")
    result = await tq.cancel_many([t.id for t in queued[:3]] + [done.id, uuid.uuid4()])
    assert (result.matched, result.changed) == (4, 4)
    assert (await tq.get(done.id)).status == "cancelled"
    again = await tq.cancel_many([t.id for t in queued[:3]])
    assert (again.matched, again.changed) == (3, 0)
    with pytest.raises(InvalidArgument, match="ids or a filter"):
        await tq.retry_many()
    with pytest.raises(InvalidArgument, match="ids or a filter"):
        await tq.retry_many([done.id], where=every)
    for limit in (0, 10_001):
        with pytest.raises(InvalidArgument, match="limit"):
            await tq.retry_many(where=every, limit=limit)


async def test_cancelling_running_tasks_stops_their_handlers_within_a_second(
    pool: asyncpg.Pool, database_url: str
) -> None:
    registry = Registry()
    stopped: dict[uuid.UUID, float] = {}

    @registry.task("long")
    async def long(payload: object, ctx: TaskContext) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped[ctx.task_id] = time.monotonic()
            raise

    tq = TaskQueue(pool, registry)
    tasks = await tq.enqueue_many([NewTask(type="long") for _ in range(4)])
    ids = [t.id for t in tasks]
    async with running_worker(database_url, registry, concurrency=4, lease_seconds=30):
        await wait_until(lambda: all_in_status(pool, ids, "running"))
        cancelled_at = time.monotonic()
        one = await tq.cancel(ids[0], actor="ops")
        many = await tq.cancel_many(ids[1:3], actor="ops")
        assert (one.status, many.changed) == ("cancelled", 2)
        await wait_until(lambda: _all_in(stopped, ids[:3]))
        assert (await tq.get(ids[3])).status == "running"  # the one left alone runs on
        await tq.cancel(ids[3])
        await wait_until(lambda: _all_in(stopped, ids))
    slowest = max(stopped[i] for i in ids[:3]) - cancelled_at
    print(f"\ncancel: handlers stopped {slowest * 1000:.0f} ms after the cancel")
    assert slowest < 1.0
    events = await pool.fetch(
        "SELECT task_id, worker_id, attempt, detail FROM taskqueue.task_events"
        " WHERE event_type = 'task_cancelled'"
    )
    assert {e["task_id"] for e in events} == set(ids)
    assert all(e["worker_id"] is not None and e["attempt"] == 1 for e in events)
    assert all(e["detail"] == {"was": "running"} for e in events)
    # The worker's outcomes failed the fence: nothing after the cancel.
    last = await pool.fetch(
        "SELECT DISTINCT ON (task_id) event_type FROM taskqueue.task_events"
        " ORDER BY task_id, id DESC"
    )
    assert {r["event_type"] for r in last} == {"task_cancelled"}
    actors = [a.actor for a in await tq.actions()]
    assert actors.count("ops") == 2
    assert await run_audit(pool) == []


async def test_delete_removes_only_finished_tasks_and_keeps_their_history(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await fail_tasks(pool, ["x"] * 3)
    waiting = await tq.enqueue("noop")
    result = await tq.delete_many(where=TaskFilter(type="charge"))
    also = await tq.delete_many([waiting.id])
    assert (result.matched, result.changed, also.matched, also.changed) == (3, 3, 1, 0)
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 1
    trails = await pool.fetch(
        "SELECT task_id, array_agg(event_type ORDER BY id) AS trail"
        " FROM taskqueue.task_events WHERE task_id <> $1 GROUP BY task_id",
        waiting.id,
    )
    assert [r["trail"] for r in trails] == [
        ["task_queued", "task_started", "task_failed", "task_deleted"]
    ] * 3
    assert await run_audit(pool) == []


async def _all_in(stopped: dict[uuid.UUID, float], ids: list[uuid.UUID]) -> bool:
    return all(i in stopped for i in ids)


async def test_filters_that_would_match_everything_or_reach_sql_broken_are_refused(
    tq: TaskQueue,
) -> None:
    from datetime import UTC, datetime

    for where, field in (
        (TaskFilter(), "filter"),
        (TaskFilter(error=""), "filter.error"),
        (TaskFilter(error="a\x00b"), "filter.error"),
        (TaskFilter(queue=""), "filter.queue"),
        (TaskFilter(queue="q\x00"), "filter.queue"),
        (TaskFilter(type="t\x00"), "filter.type"),
        (
            TaskFilter(status=Status.FAILED, created_before=datetime(1, 1, 1, tzinfo=UTC)),
            "filter.created_before",
        ),
    ):
        for act in (tq.retry_many, tq.cancel_many, tq.delete_many):
            with pytest.raises(InvalidArgument) as caught:
                await act(where=where)
            assert caught.value.field == field, (where, caught.value)
    for kwargs, field in (
        ({"queue": "\x00"}, "queue"),
        ({"type": "bad\x00"}, "type"),
        ({"since": datetime(1, 1, 1, tzinfo=UTC)}, "since"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            await tq.failures(**kwargs)
        assert caught.value.field == field
