"""Large batches as binary rows (store/bulk_copy.py): the same tasks,
events, lanes, wake-up and idempotency as the one-statement insert, in one
transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.store._sql import query
from taskqueue.store.bulk_copy import COPY_MIN_ROWS, copyable
from taskqueue.store.task_rows import COPY_COLUMNS, TaskRow
from taskqueue.store.workflows import DependentRow
from tests.helpers import all_in_status, run_audit, running_worker, wait_until

SIZE = COPY_MIN_ROWS + 20


async def counts(pool: asyncpg.Pool) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM taskqueue.tasks) AS tasks,"
        " (SELECT count(*) FROM taskqueue.task_events WHERE event_type = 'task_queued') AS events"
    )
    assert row is not None
    return row["tasks"], row["events"]


async def test_a_large_batch_goes_by_copy_and_equals_the_committed_rows(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    statements: list[str] = []
    new = [NewTask(type="noop", payload={"i": i}, priority=i % 3) for i in range(SIZE)]
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: statements.append(record.query))
        tasks = await tq.enqueue_many(new, connection=conn)
    # One statement took them all, as binary rows, not the JSON statement.
    assert [q for q in statements if "enqueue" in q] == [query("enqueue_copied")]
    assert [t.payload for t in tasks] == [{"i": i} for i in range(SIZE)]
    for task in tasks[:: SIZE // 10]:
        assert task == await tq.get(task.id)
    assert await counts(pool) == (SIZE, SIZE)
    assert await run_audit(pool) == []


async def test_keys_and_delays_in_a_copied_batch_keep_their_rules(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    owner = await tq.enqueue("noop", {"first": True}, idempotency_key="taken")
    later = datetime(2031, 1, 1, tzinfo=UTC)
    new = [NewTask(type="noop", payload={"i": i}) for i in range(SIZE)]
    new[3] = NewTask(type="noop", idempotency_key="taken")
    new[7] = NewTask(type="noop", idempotency_key="fresh")
    new[11] = NewTask(type="noop", delay_seconds=60)
    new[13] = NewTask(type="noop", run_at=later)
    results = await tq.submit(new)
    assert [r.created for r in results].count(False) == 1
    assert (results[3].created, results[3].task.id) == (False, owner.id)
    assert results[7].created and results[7].task.idempotency_key == "fresh"
    delayed = await tq.get(results[11].task.id)
    assert delayed.run_at - delayed.created_at == timedelta(seconds=60)
    assert (await tq.get(results[13].task.id)).run_at == later
    for result in results:
        assert result.task == await tq.get(result.task.id)
    assert await counts(pool) == (SIZE, SIZE)  # the owner, and all but the duplicate


async def test_a_rolled_back_transaction_leaves_no_task_no_event_and_no_wakeup(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener("taskqueue", lambda *args: heard.append(args[3]))
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await tq.enqueue_many([NewTask(type="noop") for _ in range(SIZE)], connection=conn)
            await transaction.rollback()
        assert await counts(pool) == (0, 0)
        new = [NewTask(type="noop", queue=f"q{i % 2}") for i in range(SIZE)]
        await tq.enqueue_many(new)
        await wait_until(lambda: _true(bool(heard)))
        # A round trip: any other notification of that commit arrives before its answer.
        await listener.fetchval("SELECT 1")
        assert len(heard) == 1
        assert sorted(heard[0].split(",")) == ["q0", "q1"]
    finally:
        await listener.close()


async def _true(value: bool) -> bool:
    return value


async def test_copied_tasks_open_their_lanes_and_a_worker_runs_them(
    pool: asyncpg.Pool, database_url: str
) -> None:
    tq = TaskQueue(pool)
    tasks = await tq.enqueue_many(
        [NewTask(type="noop", queue="copied", priority=i % 2) for i in range(SIZE)]
    )
    lanes = await pool.fetch(
        "SELECT priority FROM taskqueue.claim_lanes WHERE queue = 'copied' ORDER BY priority"
    )
    assert [r["priority"] for r in lanes] == [0, 1]
    async with running_worker(database_url, queues=("copied",)):
        await wait_until(lambda: all_in_status(pool, [t.id for t in tasks], "succeeded"))
    assert await run_audit(pool) == []


async def test_copy_columns_are_the_rows_fields_but_those_the_database_clock_decides(
    pool: asyncpg.Pool,
) -> None:
    assert (
        tuple(f for f in TaskRow.__struct_fields__ if f not in ("run_at", "delay_us", "ttl_us"))
        == COPY_COLUMNS
    )
    # ... and the attributes of the row type they are sent as, in order.
    attributes = await pool.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'taskqueue.task_input'::regclass"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    assert tuple(a["attname"] for a in attributes) == COPY_COLUMNS


async def test_expiry_and_callbacks_arrive_through_copy_and_beside_it(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    until = datetime.now(UTC) + timedelta(hours=1)
    callback = {"url": "https://example.com/done", "events": ["succeeded"]}
    new = [NewTask(type="noop", expires_at=until, callback=callback) for _ in range(SIZE)]
    new.append(NewTask(type="noop", ttl_seconds=60))  # counted from the database's clock
    tasks = await tq.enqueue_many(new)
    rows = await pool.fetch(
        "SELECT id, expires_at, callback, created_at FROM taskqueue.tasks WHERE id = ANY($1)",
        [t.id for t in tasks],
    )
    stored = {r["id"]: r for r in rows}
    for task in tasks[:SIZE]:
        assert stored[task.id]["expires_at"] == until == task.expires_at
        assert stored[task.id]["callback"] == callback == task.callback
    relative = stored[tasks[-1].id]
    assert relative["expires_at"] == relative["created_at"] + timedelta(seconds=60)
    assert tasks[-1].expires_at == relative["expires_at"]


def test_copy_never_takes_a_task_that_may_wait_for_parents() -> None:
    plain = TaskRow(
        id=uuid.uuid4(), queue="default", type="noop", name="", payload={}, priority=0,
        max_retries=0, timeout_seconds=1.0, run_at=None, delay_us=0, idempotency_key=None,
    )  # fmt: skip
    assert copyable(plain)
    # Its status, parents and workflow are columns COPY does not write.
    assert not copyable(DependentRow(**msgspec.structs.asdict(plain)))
