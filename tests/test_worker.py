"""The worker end to end, in-process, against real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.registry import Registry, TaskContext, load_registry
from taskqueue.worker import Worker
from taskqueue.worker.leases import Rescuer
from tests.helpers import (
    all_in_status,
    event_types,
    run_audit,
    running_worker,
    status_of,
    wait_until,
)


async def test_a_task_runs_once_with_the_full_event_trail(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    async with running_worker(database_url) as worker:
        task = await tq.enqueue("noop", {"hello": "world"})
        await wait_until(lambda: all_in_status(pool, [task.id], "succeeded"))
    done = await tq.get(task.id)
    assert (done.attempts, done.locked_by, done.last_error) == (1, None, None)
    assert done.started_at is not None
    assert done.completed_at is not None
    assert await event_types(pool, task.id) == ["task_queued", "task_started", "task_succeeded"]
    workers = await pool.fetch(
        "SELECT DISTINCT worker_id FROM taskqueue.task_events"
        " WHERE task_id = $1 AND worker_id IS NOT NULL",
        task.id,
    )
    assert [r["worker_id"] for r in workers] == [worker.worker_id]


class Greeting(msgspec.Struct):
    name: str
    times: int = 1


async def test_handlers_get_a_typed_payload_and_context_and_results_are_stored(
    pool: asyncpg.Pool, database_url: str
) -> None:
    seen: list[tuple[Greeting, TaskContext]] = []
    registry = Registry()

    @registry.task("greet", payload=Greeting)
    async def greet(payload: Greeting, ctx: TaskContext) -> dict[str, str]:
        seen.append((payload, ctx))
        return {"greeting": f"hello {payload.name}" * payload.times}

    tq = TaskQueue(pool, registry)
    task = await tq.enqueue("greet", {"name": "ada"})
    async with running_worker(database_url, registry) as worker:
        await wait_until(lambda: all_in_status(pool, [task.id], "succeeded"))
    ((payload, ctx),) = seen
    assert payload == Greeting(name="ada")
    assert (ctx.task_id, ctx.attempt, ctx.worker_id, ctx.type) == (
        task.id,
        1,
        worker.worker_id,
        "greet",
    )
    assert (await tq.get(task.id)).result == {"greeting": "hello ada"}


async def test_failures_retry_with_backoff_then_fail_with_the_last_error(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    task = await tq.enqueue("fail", {"message": "boom"}, max_retries=2)
    async with running_worker(database_url):
        await wait_until(lambda: all_in_status(pool, [task.id], "failed"))
    failed = await tq.get(task.id)
    assert failed.attempts == 3
    assert failed.last_error == "IntentionalFailure: boom"
    assert await event_types(pool, task.id) == [
        "task_queued",
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_retry_scheduled",
        "task_started",
        "task_failed",
    ]
    retries = await pool.fetch(
        "SELECT e.at, e.detail, (e.detail->>'retry_at')::timestamptz AS retry_at"
        " FROM taskqueue.task_events e"
        " WHERE task_id = $1 AND event_type = 'task_retry_scheduled' ORDER BY id",
        task.id,
    )
    starts = await pool.fetch(
        "SELECT at FROM taskqueue.task_events"
        " WHERE task_id = $1 AND event_type = 'task_started' ORDER BY id",
        task.id,
    )
    for retry, next_start in zip(retries, starts[1:], strict=True):
        assert retry["detail"]["failure"] == "error"
        assert retry["retry_at"] > retry["at"]  # a real backoff was scheduled
        assert next_start["at"] >= retry["retry_at"]  # and honoured


async def test_a_timeout_is_recorded_as_a_timeout_not_an_error(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    slow = await tq.enqueue("sleep", {"seconds": 30}, timeout_seconds=0.2, max_retries=0)
    broken = await tq.enqueue("fail", {}, max_retries=0)
    async with running_worker(database_url):
        await wait_until(lambda: all_in_status(pool, [slow.id, broken.id], "failed"))
    details = {
        r["task_id"]: (r["detail"]["failure"], r["error"])
        for r in await pool.fetch(
            "SELECT task_id, detail, error FROM taskqueue.task_events"
            " WHERE event_type = 'task_failed'"
        )
    }
    assert details[slow.id] == ("timeout", "timed out after 0.2 seconds")
    assert details[broken.id][0] == "error"
    assert details[broken.id][1].startswith("IntentionalFailure")


async def test_delayed_task_runs_no_earlier_than_run_at(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    task = await tq.enqueue("noop", delay=0.5)
    async with running_worker(database_url):
        await wait_until(lambda: all_in_status(pool, [task.id], "succeeded"))
    started_at = await pool.fetchval(
        "SELECT at FROM taskqueue.task_events WHERE task_id = $1 AND event_type = 'task_started'",
        task.id,
    )
    assert started_at >= task.run_at


async def test_lease_renewal_keeps_a_long_task_from_rescue(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    task = await tq.enqueue("sleep", {"seconds": 1.5})
    rescuer = Rescuer(pool, worker_id="test-rescuer", interval=60)
    async with running_worker(database_url, lease_seconds=0.6):
        await wait_until(lambda: all_in_status(pool, [task.id], "running"))
        # Three leases' worth of time passes while the task runs; the rescuer
        # looks again and again and never finds it expired.
        while await status_of(pool, task.id) == "running":
            assert await rescuer.run_once() == []
            await asyncio.sleep(0.05)
    assert await status_of(pool, task.id) == "succeeded"
    assert await event_types(pool, task.id) == ["task_queued", "task_started", "task_succeeded"]


async def test_many_tasks_across_concurrency_each_succeed_exactly_once(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    tasks = await tq.enqueue_many([NewTask(type="noop", payload={"i": i}) for i in range(3000)])
    ids = [t.id for t in tasks]
    async with running_worker(database_url, concurrency=8, prefetch=50):
        await wait_until(lambda: all_in_status(pool, ids, "succeeded"), timeout=60)
    counts = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE event_type = 'task_started') AS started,"
        " count(*) FILTER (WHERE event_type = 'task_succeeded') AS succeeded,"
        " count(DISTINCT task_id) FILTER (WHERE event_type = 'task_succeeded') AS distinct_ids"
        " FROM taskqueue.task_events"
    )
    assert counts is not None
    assert (counts["started"], counts["succeeded"], counts["distinct_ids"]) == (3000, 3000, 3000)


async def test_worker_rides_out_lost_connections_and_keeps_every_outcome(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    registry = load_registry([])
    tasks = await tq.enqueue_many(
        [NewTask(type="sleep", payload={"seconds": 0.01}) for _ in range(400)]
    )
    ids = [t.id for t in tasks]
    async with running_worker(database_url, registry, concurrency=20, lease_seconds=2) as worker:
        for _ in range(4):
            await wait_until(lambda: _claimed_some(worker))
            killed = await pool.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'taskqueue-worker' AND datname = current_database()"
            )
            assert killed >= 1
            await asyncio.sleep(0.1)
        await wait_until(lambda: all_in_status(pool, ids, "succeeded"), timeout=60)
    duplicates = await pool.fetchval(
        "SELECT count(*) FROM (SELECT task_id FROM taskqueue.task_events"
        " WHERE event_type = 'task_succeeded' GROUP BY task_id HAVING count(*) > 1) d"
    )
    assert duplicates == 0


async def _claimed_some(worker: Worker) -> bool:
    return worker.inflight.claimed > 0


async def test_a_handlers_own_backoff_overrides_the_global_one(
    pool: asyncpg.Pool, database_url: str
) -> None:
    from datetime import timedelta

    from taskqueue.backoff import Backoff, Jitter

    registry = Registry()

    @registry.task("flaky", backoff=Backoff(base=30, cap=30, jitter=Jitter.EQUAL))
    async def flaky(payload: object, ctx: TaskContext) -> None:
        raise RuntimeError("not yet")

    tq = TaskQueue(pool, registry)
    task = await tq.enqueue("flaky", {}, max_retries=1)
    async with running_worker(database_url, registry):  # global backoff: 0.01-0.05 s
        await wait_until(lambda: _retried(pool, task.id))
    row = await pool.fetchrow(
        "SELECT at, (detail->>'retry_at')::timestamptz AS retry_at FROM taskqueue.task_events"
        " WHERE task_id = $1 AND event_type = 'task_retry_scheduled'",
        task.id,
    )
    assert row is not None
    assert timedelta(seconds=15) <= row["retry_at"] - row["at"] <= timedelta(seconds=30)


async def _retried(pool: asyncpg.Pool, task_id: object) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM taskqueue.task_events"
            " WHERE task_id = $1 AND event_type = 'task_retry_scheduled'",
            task_id,
        )
    )


async def test_claims_go_on_while_the_completer_writes_up_to_twice_the_capacity(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    tasks = [await tq.enqueue("noop", {"n": n}) for n in range(6)]
    ids = [t.id for t in tasks]

    async def started() -> int:
        found = await pool.fetchval(
            "SELECT count(*) FROM taskqueue.task_events"
            " WHERE event_type = 'task_started' AND task_id = ANY($1::uuid[])",
            ids,
        )
        return int(found)

    async with pool.acquire() as blocker:
        # The completion statement appends to queue_counts: held here, every
        # outcome waits, as behind a slow disk or a lock.
        held = blocker.transaction()
        await held.start()
        await blocker.execute("LOCK TABLE taskqueue.queue_counts IN SHARE MODE")
        async with running_worker(database_url, concurrency=2, prefetch=0) as worker:
            try:
                # Capacity 2: two handlers end, their outcomes wait, and the
                # next two are claimed and run meanwhile; then claims wait.
                async def four_started() -> bool:
                    return await started() >= 4

                await wait_until(four_started)
                assert worker.completer is not None and worker.completer.pending >= 2
                assert not await all_in_status(pool, ids[:1], "succeeded")
            finally:
                await held.rollback()  # before the worker stops: it records all first
            await wait_until(lambda: all_in_status(pool, ids, "succeeded"))
    assert await started() == 6  # each once
    assert await run_audit(pool) == []
