"""Tasks of types a worker has no handler for: never claimed, never charged,
named in a warning, run by a worker that has the handler; and the claim's
cost does not grow with a backlog of them."""

from __future__ import annotations

import json

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.registry import Registry, TaskContext
from taskqueue.worker import Worker
from taskqueue.worker.unhandled import UnhandledTypes
from tests.helpers import all_in_status, explained_plan, plan_nodes, running_worker, wait_until


async def test_tasks_of_a_type_the_worker_lacks_stay_queued_for_one_that_has_it(
    pool: asyncpg.Pool, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    producer = TaskQueue(pool, registry=None)  # a producer that does not check types
    unknown = await producer.enqueue_many(
        [NewTask(type="send_email", payload={"to": f"u{i}"}) for i in range(20)]
    )
    known = await producer.enqueue("noop")
    ids = [t.id for t in unknown]
    async with running_worker(database_url) as worker:  # built-in types only
        await wait_until(lambda: all_in_status(pool, [known.id], "succeeded"))
        await wait_until(lambda: _warned_about(caplog, "send_email"))
        # Time passes and the worker keeps claiming: it never takes them.
        await wait_until(lambda: _claims_made(worker, 3))
    rows = await pool.fetch("SELECT status, attempts FROM taskqueue.tasks WHERE id = ANY($1)", ids)
    assert {(r["status"], r["attempts"]) for r in rows} == {("queued", 0)}
    assert await pool.fetchval(
        "SELECT count(*) FROM taskqueue.task_events WHERE task_id = ANY($1)", ids
    ) == len(ids)  # only task_queued: never started, never charged

    registry = Registry()
    ran: list[str] = []

    @registry.task("send_email")
    async def send_email(payload: dict[str, str], ctx: TaskContext) -> None:
        ran.append(payload["to"])

    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, ids, "succeeded"))
    assert sorted(ran) == sorted(f"u{i}" for i in range(20))
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM taskqueue.task_events WHERE event_type = 'task_failed'"
        )
        == 0
    )


async def _warned_about(caplog: pytest.LogCaptureFixture, task_type: str) -> bool:
    return any(
        r.levelname == "WARNING" and f"type {task_type!r}" in r.getMessage() for r in caplog.records
    )


async def _claims_made(worker: Worker, at_least: int) -> bool:
    return (
        worker.inflight.claimed >= 1
        and worker.dispatcher is not None
        and (worker.dispatcher.claims >= at_least)
    )


async def test_the_check_names_each_queue_and_type_no_handler_here_runs(
    pool: asyncpg.Pool,
) -> None:
    producer = TaskQueue(pool, registry=None)
    await producer.enqueue_many(
        [NewTask(type=t, queue=q) for t, q in [("a", "q1"), ("b", "q1"), ("b", "q1")]]
        + [NewTask(type="noop", queue="q1"), NewTask(type="c", queue="q2")]
        + [NewTask(type="d", queue="elsewhere")]
    )
    check = UnhandledTypes(pool, queues=["q1", "q2"], types=["noop", "b"])
    assert sorted(await check.run_once()) == [("q1", "a"), ("q2", "c")]


async def test_a_backlog_of_unknown_types_ahead_costs_the_claim_nothing(
    pool: asyncpg.Pool,
) -> None:
    producer = TaskQueue(pool, registry=None)
    for _ in range(10):  # 10,000 tasks no worker here can run, first in line
        await producer.enqueue_many([NewTask(type="send_email", priority=10) for _ in range(1000)])
    await producer.enqueue_many([NewTask(type="noop") for _ in range(200)])
    await pool.execute("ANALYZE taskqueue.tasks")
    async with pool.acquire() as conn, conn.transaction():
        plan = await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + store.statement("claim_tasks"),
            ["default"],
            100,
            "w",
            30.0,
            ["noop", "sleep"],
            [],  # types that read their parents' results
        )
        await conn.execute("ROLLBACK AND CHAIN")  # EXPLAIN ANALYZE claimed for real
    text = json.dumps(plan if isinstance(plan, list) else json.loads(plan))
    scans = plan_nodes(json.loads(text)[0]["Plan"], "tasks_claim_idx")
    # One walk per lane of the worker's types that has ever had a task: the
    # noop lane alone (no sleep task was ever queued) returns the 100 rows,
    # and not a single send_email row is read.
    (scan,) = scans
    assert (scan["Actual Loops"], scan["Actual Rows"] * scan["Actual Loops"]) == (1, 100)
    assert scan.get("Rows Removed by Filter", 0) == 0
    assert scan["Shared Hit Blocks"] + scan.get("Shared Read Blocks", 0) < 50


async def test_the_check_reads_lanes_from_their_floors_while_the_horizon_is_held(
    pool: asyncpg.Pool, database_url: str
) -> None:
    producer = TaskQueue(pool, registry=None)
    holder = await asyncpg.connect(database_url)
    try:
        holding = holder.transaction()
        await holding.start()
        await holder.fetchval("SELECT pg_current_xact_id()")  # vacuum can remove nothing now
        for _ in range(5):  # 5,000 send_email tasks claimed by some other worker
            await producer.enqueue_many([NewTask(type="send_email") for _ in range(1000)])
            await store.claim_tasks(pool, ["default"], 1000, "other", 30, types=["send_email"])
        await store.advance_lanes(pool, ["default"], ["send_email"], grace=0.0, every=0.0)
        await producer.enqueue("send_email")
        async with pool.acquire() as conn:
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + store.query("find_unhandled_types"),
                "default",
                ["noop"],
                50,
            )
        (scan,) = plan_nodes(explained_plan(plan), "tasks_claim_idx")
        # The 5,000 claimed tasks' entries lie below the lane's floor: unread.
        assert scan["Shared Hit Blocks"] + scan.get("Shared Read Blocks", 0) < 10
        check = UnhandledTypes(pool, queues=["default"], types=["noop"])
        assert await check.run_once() == [("default", "send_email")]
    finally:
        await holder.close()
