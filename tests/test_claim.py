from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind, Task


async def test_four_concurrent_claimers_claim_each_task_exactly_once(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    for _ in range(4):
        await tq.enqueue_many([NewTask(type="noop", payload={"i": i}) for i in range(500)])

    async def claimer(worker_id: str) -> list[uuid.UUID]:
        claimed: list[uuid.UUID] = []
        while batch := await store.claim_tasks(
            pool, ["default"], 37, worker_id, 30, types=["noop"]
        ):
            claimed.extend(t.id for t in batch)
        return claimed

    results = await asyncio.gather(*(claimer(f"claimer-{n}") for n in range(4)))
    every = [task_id for result in results for task_id in result]
    assert len(every) == 2000
    assert len(set(every)) == 2000
    assert all(results), "every claimer got a share"
    started = await pool.fetchval(
        "SELECT count(DISTINCT task_id) FILTER (WHERE event_type = 'task_started')"
        " = count(*) FILTER (WHERE event_type = 'task_started') FROM taskqueue.task_events"
    )
    assert started is True
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM taskqueue.tasks WHERE status = 'running' AND attempts = 1"
        )
        == 2000
    )


@pytest.mark.parametrize(
    ("governed", "tenant"), [(False, None), (False, "acme"), (True, None), (True, "acme")]
)
async def test_claim_order_is_priority_then_run_at_then_id(
    tq: TaskQueue, pool: asyncpg.Pool, governed: bool, tenant: str | None
) -> None:
    # A single tenant (none, or one) takes its turns in claim order, through
    # either claim (the governed one for a queue with a per-key limit).
    if governed:
        await tq.set_limits("default", per_key=5)
    now = datetime.now(UTC)

    async def enqueue(priority: int, minutes: int) -> Task:
        run_at = now - timedelta(minutes=minutes)
        return await tq.enqueue("noop", priority=priority, run_at=run_at, tenant=tenant)

    low_old = await enqueue(0, 10)
    high_new = await enqueue(5, 1)
    high_old = await enqueue(5, 5)
    low_new_a = await enqueue(0, 2)
    # enqueue() makes a past run_at due now; backdate the rows to order them by run_at.
    for enqueued, minutes in ((low_old, 10), (high_new, 1), (high_old, 5), (low_new_a, 2)):
        await pool.execute(
            "UPDATE taskqueue.tasks SET run_at = $2 WHERE id = $1",
            enqueued.id,
            now - timedelta(minutes=minutes),
        )
    claimed = await store.claim_tasks(
        pool, ["default"], 10, "w", 30, types=["noop"], governed=governed
    )
    assert [t.id for t in claimed] == [high_old.id, high_new.id, low_old.id, low_new_a.id]
    one_at_a_time = [high_old.id, high_new.id, low_old.id, low_new_a.id]
    await pool.execute(
        "UPDATE taskqueue.tasks SET status = 'queued', locked_by = NULL, locked_until = NULL"
    )
    for expected in one_at_a_time:
        (task,) = await store.claim_tasks(
            pool, ["default"], 1, "w", 30, types=["noop"], governed=governed
        )
        assert task.id == expected


async def test_delayed_tasks_are_not_claimed_before_run_at(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    later = await tq.enqueue("noop", delay=3600)
    due = await tq.enqueue("noop", run_at=datetime.now(UTC) - timedelta(seconds=1))
    claimed = await store.claim_tasks(pool, ["default"], 10, "w", 30, types=["noop"])
    assert [t.id for t in claimed] == [due.id]
    # Once its time has come (moved back here rather than waiting an hour) it is claimed.
    await pool.execute(
        "UPDATE taskqueue.tasks SET run_at = now() - interval '1 second' WHERE id = $1", later.id
    )
    assert [
        t.id for t in await store.claim_tasks(pool, ["default"], 10, "w", 30, types=["noop"])
    ] == [later.id]


async def test_claim_takes_only_the_named_queues_and_orders_across_them(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    critical = await tq.enqueue("noop", queue="critical", priority=10)
    default = await tq.enqueue("noop", queue="default", priority=1)
    await tq.enqueue("noop", queue="reports", priority=100)
    claimed = await store.claim_tasks(pool, ["critical", "default"], 10, "w", 30, types=["noop"])
    assert [t.id for t in claimed] == [critical.id, default.id]


async def test_claim_batch_is_limited_and_sets_a_database_lease(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop") for _ in range(10)])
    claimed = await store.claim_tasks(pool, ["default"], 4, "w-1", 12.5, types=["noop"])
    assert len(claimed) == 4
    leases = await pool.fetch(
        "SELECT locked_by, locked_until - started_at AS lease FROM taskqueue.tasks"
        " WHERE status = 'running'"
    )
    assert len(leases) == 4
    assert {(r["locked_by"], r["lease"]) for r in leases} == {("w-1", timedelta(seconds=12.5))}


async def test_claim_uses_its_index_even_with_a_deep_backlog(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    for _ in range(10):
        await tq.enqueue_many([NewTask(type="noop") for _ in range(1000)])
    await tq.enqueue_many([NewTask(type="noop", queue="other") for _ in range(1000)])
    await pool.execute("ANALYZE taskqueue.tasks")
    # Plain EXPLAIN plans the statement without running it.
    plan_json = await pool.fetchval(
        "EXPLAIN (FORMAT JSON) " + store.statement("claim_tasks"),
        ["default"],
        100,
        "w",
        30.0,
        ["noop", "sleep", "webhook"],
        [],  # types that read their parents' results
    )
    plan = json.dumps(plan_json if isinstance(plan_json, list) else json.loads(plan_json))
    assert "tasks_claim_idx" in plan
    assert '"Node Type": "Seq Scan"' not in plan


async def test_the_plain_claim_skips_queues_with_settings_and_the_governed_one_applies_them(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop", queue=q) for q in ("free", "held", "narrow")])
    await tq.pause("held")
    await tq.set_limits("narrow", concurrency=1)
    queues = ["free", "held", "narrow"]
    plain = await store.claim_tasks(pool, queues, 10, "w", 30, types=["noop"])
    assert {t.queue for t in plain} == {"free"}  # whatever the worker believes
    governed = await store.claim_tasks(pool, queues, 10, "w", 30, types=["noop"], governed=True)
    assert {t.queue for t in governed} == {"narrow"}
    assert await store.queues_with_settings(pool, queues) == {"held", "narrow"}
    # A queue whose settings no longer pause or limit anything loses its row.
    await tq.resume("held")
    await tq.set_limits("narrow", concurrency=None)
    assert await store.queues_with_settings(pool, queues) == set()
    assert [
        t.queue for t in await store.claim_tasks(pool, queues, 10, "w", 30, types=["noop"])
    ] == ["held"]


async def test_a_workers_plans_cached_on_an_empty_table_never_scan_tasks_once_it_grew(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    # A worker's session keeps the plans of its write-path functions and may
    # make them, generic, while tasks is empty and before autovacuum has
    # looked at it (the first minute of a fresh install). Statistics of an
    # empty table make a read of all of it look free; such a plan stays until
    # something invalidates it. Seen in the pressure bench: the claim's and
    # the completion's UPDATE read all of tasks each call (p50 1.5 -> 12 ms
    # in 60 s at 1,000 tasks/s) until autovacuum's first visit. Forced generic
    # here, the plans are made on an empty table, then run on 20,000 rows;
    # autovacuum is kept off the table meanwhile, as an analyze would remake
    # the plans and hide what they do.
    await tq.set_limits("narrow", concurrency=5)  # the governed claim's queue
    await pool.execute("ALTER TABLE taskqueue.tasks SET (autovacuum_enabled = off)")
    await pool.execute("VACUUM ANALYZE taskqueue.tasks")
    read = (
        "SELECT seq_scan * 1000000 + seq_tup_read + coalesce(idx_tup_fetch, 0)"
        " FROM pg_stat_xact_user_tables WHERE relid = 'taskqueue.tasks'::regclass"
    )
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET plan_cache_mode = force_generic_plan")

            async def rows_read(step: Awaitable[object]) -> tuple[int, object]:
                async with conn.transaction():  # no statistics are flushed inside
                    before = await conn.fetchval(read)
                    answer = await step
                    return await conn.fetchval(read) - before, answer

            async def one_cycle() -> dict[str, int]:
                plain = await tq.enqueue("noop")
                limited = await tq.enqueue("noop", queue="narrow")
                counts: dict[str, int] = {}
                # The lanes' catch, as if the enqueue had committed late.
                ended = await conn.fetchval(
                    "SELECT xid FROM taskqueue.task_events WHERE task_id = $1", plain.id
                )
                counts["catch"], _ = await rows_read(
                    store.catch_late_tasks(conn, [ended], ["default"], ["noop"])
                )
                counts["claim"], claimed = await rows_read(
                    store.claim_tasks(conn, ["default"], 10, "w", 30, types=["noop"])
                )
                counts["governed claim"], governed = await rows_read(
                    store.claim_tasks(conn, ["narrow"], 10, "w", 30, types=["noop"], governed=True)
                )
                assert [t.id for t in claimed] == [plain.id]  # type: ignore[attr-defined]
                assert [t.id for t in governed] == [limited.id]  # type: ignore[attr-defined]
                counts["renewal"], _ = await rows_read(
                    store.extend_leases(conn, [plain.id, limited.id], "w", 30)
                )
                done = Outcome(task_id=plain.id, attempt=1, kind=OutcomeKind.SUCCEEDED)
                counts["completion"], _ = await rows_read(store.complete_tasks(conn, [done], "w"))
                failed = Outcome(task_id=limited.id, attempt=1, kind=OutcomeKind.PERMANENT)
                counts["completion with callbacks"], _ = await rows_read(
                    store.complete_tasks(conn, [failed], "w", callbacks=True)
                )
                counts["rescue"], _ = await rows_read(store.rescue_expired(conn, "r"))
                return counts

            for _ in range(3):
                await one_cycle()
            await conn.execute(
                "INSERT INTO taskqueue.tasks (id, queue, type, name, payload, status,"
                " completed_at) SELECT gen_random_uuid(), 'default', 'noop', 'noop', '{}',"
                " 'succeeded', now() FROM generate_series(1, 20000)"
            )
            assert await conn.fetchval("SELECT pg_relation_size('taskqueue.tasks') / 8192") > 200
            counts = await one_cycle()
            await conn.execute("RESET plan_cache_mode")
    finally:
        await pool.execute("ALTER TABLE taskqueue.tasks RESET (autovacuum_enabled)")
    # No step scans the table (a scan counts 1,000,000 here). The claims and
    # the renewal find their rows by id (id = ANY): a handful of rows each,
    # where a plan that reads the table reads 20,000. The completion and the
    # rescue join their input to tasks; a plan made this way may still drive
    # that join from a full read of tasks_pkey (20,008 rows here), and adding
    # id = ANY to them made the ordinary plan rescan the input once per task,
    # halving the drain; README, "A long-lived database", says so.
    assert all(n < 1_000_000 for n in counts.values()), counts
    by_id = ("catch", "claim", "governed claim", "renewal")
    assert all(counts[step] <= 10 for step in by_id), counts
