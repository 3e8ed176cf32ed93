"""Expiry (TTL): a task not started by its expires_at never runs. Claims
expire what they come across instead of starting it (one statement, both
claim paths), the sweep (worker.expiry) ends what no claim reaches; each ends
`expired` with a task_expired event, counted, and audit knows it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from taskqueue import store
from taskqueue.audit import audit
from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidTask, TaskStateConflict
from taskqueue.models import NewTask, Status
from taskqueue.worker.expiry import ExpirySweep
from tests.helpers import (
    event_types,
    explained_plan,
    plan_nodes,
    running_worker,
    status_of,
    wait_until,
)


async def _expire_now(pool: asyncpg.Pool, task_id: uuid.UUID) -> None:
    # Tests move the expiry into the past rather than wait for it.
    await pool.execute(
        "UPDATE taskqueue.tasks SET expires_at = now() - interval '1 second' WHERE id = $1",
        task_id,
    )


@pytest.mark.parametrize("governed", [False, True])
async def test_a_claim_never_starts_a_task_past_its_expiry(
    pool: asyncpg.Pool, tq: TaskQueue, governed: bool
) -> None:
    if governed:
        await tq.queues.set_limits("default", concurrency=10)
    late = await tq.enqueue("noop", ttl_seconds=60, callback={"url": "https://h.example/"})
    fresh = await tq.enqueue("noop", ttl_seconds=60)
    plain = await tq.enqueue("noop")
    await _expire_now(pool, late.id)

    claimed = await store.claim_tasks(
        pool, ["default"], 10, "w1", 30, types=["noop"], governed=governed
    )

    # Passed over, not locked, and left for the sweep to end.
    assert {c.id for c in claimed} == {fresh.id, plain.id}
    assert await status_of(pool, late.id) == "queued"
    assert await event_types(pool, late.id) == ["task_queued"]
    if governed:  # only what started counts as running in a limited queue
        assert await pool.fetchval("SELECT running FROM taskqueue.queues") == 2
    assert await ExpirySweep(pool, worker_id="sweeper").run_once() == 1
    row = await pool.fetchrow("SELECT * FROM taskqueue.tasks WHERE id = $1", late.id)
    assert row is not None
    assert row["status"] == "expired"
    assert row["attempts"] == 0 and row["started_at"] is None and row["locked_by"] is None
    assert row["completed_at"] is not None and "expired" in row["last_error"]
    assert await event_types(pool, late.id) == ["task_queued", "task_expired"]
    queued = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.tasks WHERE type = 'taskqueue.callback'"
    )
    assert queued == 1  # the sweep queued its callback
    assert (await tq.stats()).expired_tasks == 1


async def test_expired_tasks_at_the_head_of_a_lane_hold_no_claim_back(
    pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    stale = [await tq.enqueue("noop", ttl_seconds=60) for _ in range(5)]
    behind = await tq.enqueue("noop")
    for task in stale:
        await _expire_now(pool, task.id)
    (claimed,) = await store.claim_tasks(pool, ["default"], 1, "w1", 30, types=["noop"])
    assert claimed.id == behind.id


async def test_the_sweep_expires_queued_tasks_past_their_expiry_and_leaves_the_rest(
    pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    soon = await tq.enqueue("noop", queue="nobody", ttl_seconds=10)
    later = await tq.enqueue("noop", queue="nobody", ttl_seconds=3600)
    forever = await tq.enqueue("noop", queue="nobody")
    sweep = ExpirySweep(pool, worker_id="sweeper", batch=1)
    in_a_minute = datetime.now(UTC) + timedelta(minutes=1)

    assert await sweep.run_once(now=in_a_minute) == 1

    assert await status_of(pool, soon.id) == "expired"
    assert await status_of(pool, later.id) == "queued"
    assert await status_of(pool, forever.id) == "queued"
    assert await event_types(pool, soon.id) == ["task_queued", "task_expired"]
    assert sweep.readings()["expired"] == 1
    counted = await pool.fetchval("SELECT sum(expired) FROM taskqueue.queue_counts")
    assert counted == 1
    assert (await audit(pool)).clean


async def test_a_running_worker_never_starts_an_expired_task(
    database_url: str, pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    # Nobody serves "elsewhere": only the sweep of a real worker can end it.
    stranded = await tq.enqueue("noop", queue="elsewhere", ttl_seconds=0.2)
    async with running_worker(database_url, expiry_interval=0.05) as worker:
        await wait_until(lambda: _is(pool, stranded.id, "expired"))
        served = await tq.enqueue("noop", ttl_seconds=60)
        await wait_until(lambda: _is(pool, served.id, "succeeded"))
    (sweep,) = [loop for loop in worker.loops if isinstance(loop, ExpirySweep)]
    assert sweep.readings()["expired"] >= 1
    assert (await audit(pool)).clean


async def _is(pool: asyncpg.Pool, task_id: uuid.UUID, status: str) -> bool:
    return await status_of(pool, task_id) == status


async def test_expiry_is_stored_from_either_form(tq: TaskQueue) -> None:
    at = datetime.now(UTC) + timedelta(hours=1)
    by_instant = await tq.enqueue("noop", expires_at=at)
    by_ttl = await tq.enqueue("noop", ttl_seconds=90)
    assert (await tq.get(by_instant.id)).expires_at == at
    stored = await tq.get(by_ttl.id)
    assert stored.expires_at is not None
    assert stored.expires_at - stored.created_at == timedelta(seconds=90)
    assert by_ttl.expires_at == stored.expires_at
    assert (await tq.get((await tq.enqueue("noop")).id)).expires_at is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ttl_seconds": 5, "expires_at": datetime.now(UTC) + timedelta(hours=1)}, "expires_at"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"ttl_seconds": float("nan")}, "ttl_seconds"),
        ({"ttl_seconds": 5, "delay": 10}, "ttl_seconds"),
        ({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, "expires_at"),
        ({"expires_at": datetime(2030, 1, 1)}, "expires_at"),  # no zone
        (
            {
                "run_at": datetime.now(UTC) + timedelta(hours=2),
                "expires_at": datetime.now(UTC) + timedelta(hours=1),
            },
            "expires_at",
        ),
    ],
)
async def test_an_expiry_that_could_never_let_the_task_run_is_refused(
    tq: TaskQueue, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidTask) as caught:
        await tq.enqueue("noop", **fields)  # type: ignore[arg-type]
    assert caught.value.field == field


async def test_an_expired_task_stays_expired(pool: asyncpg.Pool, tq: TaskQueue) -> None:
    task = await tq.enqueue("noop", ttl_seconds=60)
    await _expire_now(pool, task.id)
    await ExpirySweep(pool, worker_id="sweeper").run_once()
    assert (await tq.get(task.id)).status is Status.EXPIRED
    with pytest.raises(TaskStateConflict):
        await tq.retry(task.id)
    with pytest.raises(TaskStateConflict):
        await tq.cancel(task.id)


async def test_the_sweep_reads_only_the_expiry_index_never_the_claim_index(
    pool: asyncpg.Pool, tq: TaskQueue
) -> None:
    # A backlog with no expiry, then the expiry index taken out of the
    # planner's reach (dropped in a transaction that is rolled back):
    # whatever the statistics say, the sweep must not fall back to walking
    # the claim index, whose every entry (dead ones too, while vacuum is held
    # back) it would step over to find nothing.
    await tq.enqueue_many([NewTask(type="noop") for _ in range(2000)])
    await pool.execute("ANALYZE taskqueue.tasks")
    explain = "EXPLAIN (FORMAT JSON) " + store.statement("expire_tasks")
    async with pool.acquire() as conn:
        plan = explained_plan(await conn.fetchval(explain, None, 100, "w"))
        assert plan_nodes(plan, "tasks_expiry_idx"), plan
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("DROP INDEX taskqueue.tasks_expiry_idx")
            without = explained_plan(await conn.fetchval(explain, None, 100, "w"))
        finally:
            await transaction.rollback()
    assert not plan_nodes(without, "tasks_claim_idx"), without


async def test_the_sweeps_cached_plan_made_on_an_empty_table_stays_on_the_expiry_index(
    pool: asyncpg.Pool,
) -> None:
    # A worker's session keeps the sweep's plan (its write-path function's
    # PL/pgSQL plan) and may build it once, generic, while tasks is empty, as
    # on a fresh install: statistics of an empty table make a heap scan look
    # free. Seen: a sweep reading every page of tasks (9,545 a call after
    # 5 minutes at 1,000 tasks/s with vacuum held back), and, before the
    # UPDATE stopped testing status, every entry of the claim index. Forced
    # generic here, the plan is made on an empty table and then run on
    # 20,000 finished tasks.
    await pool.execute("VACUUM ANALYZE taskqueue.tasks")
    sweep = store.query("expire_tasks")
    async with pool.acquire() as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        try:
            for _ in range(3):
                await conn.fetch(sweep, None, 100, "w")
            await conn.execute(
                "INSERT INTO taskqueue.tasks (id, queue, type, name, payload, status,"
                " completed_at) SELECT gen_random_uuid(), 'default', 'noop', 'noop', '{}',"
                " 'succeeded', now() FROM generate_series(1, 20000)"
            )
            pages = await conn.fetchval("SELECT pg_relation_size('taskqueue.tasks') / 8192")
            plan = explained_plan(
                await conn.fetchval(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sweep, None, 100, "w"
                )
            )
        finally:
            await conn.execute("RESET plan_cache_mode")
    read = int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])  # type: ignore[call-overload]
    assert pages > 200
    assert read < 100, (read, pages)
