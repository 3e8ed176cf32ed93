"""Lease renewal and rescue, without sleeping: expired leases are made by
writing the rows (or by pinning the rescuer's clock), then one pass is run."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.worker.leases import LeaseKeeper, Rescuer
from tests.helpers import event_types, explained_plan, plan_nodes, wait_until


async def make_running(
    pool: asyncpg.Pool, task_id: uuid.UUID, *, worker: str, attempts: int, expired: bool
) -> None:
    """A row as a worker that then died would have left it."""
    await pool.execute(
        "UPDATE taskqueue.tasks SET status = 'running', attempts = $2, locked_by = $3,"
        " started_at = now() - interval '2 minutes',"
        " locked_until = now() + CASE WHEN $4 THEN interval '-1 minute'"
        " ELSE interval '1 minute' END WHERE id = $1",
        task_id,
        attempts,
        worker,
        expired,
    )


async def test_rescuer_requeues_expired_tasks_or_fails_those_out_of_retries(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    retryable, exhausted, alive = await tq.enqueue_many(
        [NewTask(type="noop", max_retries=3) for _ in range(3)]
    )
    await make_running(pool, retryable.id, worker="dead-1", attempts=1, expired=True)
    await make_running(pool, exhausted.id, worker="dead-2", attempts=4, expired=True)
    await make_running(pool, alive.id, worker="alive", attempts=1, expired=False)

    rescued = await Rescuer(pool, worker_id="rescuer", interval=60).run_once()

    assert dict(rescued) == {retryable.id: "queued", exhausted.id: "failed"}
    back = await tq.get(retryable.id)
    assert (back.status, back.locked_by, back.locked_until, back.attempts) == (
        "queued",
        None,
        None,
        1,
    )
    gone = await tq.get(exhausted.id)
    assert gone.status == "failed"
    assert gone.completed_at is not None
    assert gone.last_error == "lease expired: worker dead-2 stopped renewing it"
    assert (await tq.get(alive.id)).status == "running"
    events = await pool.fetch(
        "SELECT task_id, status, worker_id, detail FROM taskqueue.task_events"
        " WHERE event_type = 'task_lease_expired'"
    )
    assert {(e["task_id"], e["status"], e["worker_id"]) for e in events} == {
        (retryable.id, "queued", "dead-1"),
        (exhausted.id, "failed", "dead-2"),
    }
    assert {e["detail"]["rescued_by"] for e in events} == {"rescuer"}
    # A second pass finds nothing: rescue happens once.
    assert await Rescuer(pool, worker_id="rescuer", interval=60).run_once() == []


async def test_rescuer_judges_leases_by_the_time_it_is_given(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    task = await tq.enqueue("noop")
    (claimed,) = await store.claim_tasks(pool, ["default"], 1, "w", 30, types=["noop"])
    rescuer = Rescuer(pool, worker_id="rescuer", interval=60)
    db_now = await pool.fetchval("SELECT now()")
    assert await rescuer.run_once(now=db_now + timedelta(seconds=29)) == []
    assert await rescuer.run_once(now=db_now + timedelta(seconds=31)) == [(task.id, "queued")]
    assert await event_types(pool, claimed.id) == [
        "task_queued",
        "task_started",
        "task_lease_expired",
    ]


async def test_lease_keeper_extends_held_leases_in_one_statement_and_spots_lost_ones(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    from taskqueue.worker.inflight import InFlight

    await tq.enqueue_many([NewTask(type="noop") for _ in range(3)])
    inflight = InFlight(concurrency=10, max_prefetch=0, lease_seconds=30)
    sent_at = time.monotonic()
    claimed = await store.claim_tasks(pool, ["default"], 3, "w", 1, types=["noop"])
    inflight.add(claimed, sent_at)
    held = {a.task.id: a for a in inflight.leased()}
    # One of them is taken away by the rescuer.
    db_now = await pool.fetchval("SELECT now()")
    lost_id = claimed[0].id
    await pool.execute(
        "UPDATE taskqueue.tasks SET locked_until = now() - interval '1 second' WHERE id = $1",
        lost_id,
    )
    await Rescuer(pool, worker_id="r", interval=60).run_once(now=db_now)
    keeper = LeaseKeeper(pool, inflight, worker_id="w", lease_seconds=30)
    renewing_at = time.monotonic()
    assert await keeper.run_once() == {lost_id}
    assert held[lost_id].stop_reason == "lease_lost"
    # The others' local deadlines moved to the renewal's send time + lease - margin.
    for task_id, attempt in held.items():
        if task_id != lost_id:
            assert attempt.deadline >= renewing_at + 30 - inflight.margin
    leases = await pool.fetch(
        "SELECT locked_until - now() AS left FROM taskqueue.tasks WHERE status = 'running'"
    )
    assert len(leases) == 2
    assert all(r["left"] > timedelta(seconds=25) for r in leases)


async def test_a_renewal_that_cannot_finish_times_out_within_a_quarter_lease_and_extends_nothing(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    from taskqueue.worker.inflight import InFlight

    await tq.enqueue_many([NewTask(type="noop") for _ in range(2)])
    inflight = InFlight(concurrency=10, max_prefetch=0, lease_seconds=2)
    sent_at = time.monotonic()
    inflight.add(await store.claim_tasks(pool, ["default"], 2, "w", 2, types=["noop"]), sent_at)
    before = [a.deadline for a in inflight.leased()]
    keeper = LeaseKeeper(pool, inflight, worker_id="w", lease_seconds=2)
    async with pool.acquire() as blocker, blocker.transaction():
        # Another session holds the rows: the renewal's UPDATE waits on them.
        await blocker.execute("SELECT 1 FROM taskqueue.tasks FOR UPDATE")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await keeper.run_once()
        took = time.monotonic() - started
    assert took < 2 / 3, took  # a statement on the lease path gives up before lease/3
    assert [a.deadline for a in inflight.leased()] == before
    assert all(a.stop_reason is None for a in inflight.leased())


async def test_rescue_passes_read_the_lease_index_from_where_the_last_one_judged(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    holder = await asyncpg.connect(database_url)
    try:
        holding = holder.transaction()
        await holding.start()
        await holder.fetchval("SELECT pg_current_xact_id()")  # vacuum can remove nothing now
        # 1,000 tasks run and finished: each left a lease entry vacuum cannot remove.
        await tq.enqueue_many([NewTask(type="noop") for _ in range(1000)])
        claimed = await store.claim_tasks(pool, ["default"], 1000, "w", 0.001, types=["noop"])
        await pool.execute(
            "UPDATE taskqueue.tasks SET status = 'succeeded', locked_by = NULL,"
            " locked_until = NULL, completed_at = now() WHERE id = ANY($1)",
            [t.id for t in claimed],
        )
        # Judged an hour from now, from a floor half an hour from now: one
        # lease ends between the two.
        db_now = await pool.fetchval("SELECT now()")
        judged, floor = db_now + timedelta(hours=1), db_now + timedelta(minutes=30)
        dead = await tq.enqueue("noop")
        await make_running(pool, dead.id, worker="dead", attempts=1, expired=False)
        await pool.execute(
            "UPDATE taskqueue.tasks SET locked_until = $2 WHERE id = $1",
            dead.id,
            db_now + timedelta(minutes=45),
        )
        async with pool.acquire() as conn, conn.transaction():
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + store.statement("rescue_expired"),
                judged,
                100,
                "rescuer",
                floor,
            )
            await conn.execute("ROLLBACK AND CHAIN")  # EXPLAIN ANALYZE rescued for real
        (scan,) = plan_nodes(explained_plan(plan), "tasks_lease_idx")
        # The 1,000 entries below the floor were not read; the expired lease was.
        assert scan["Actual Rows"] == 1
        assert scan["Shared Hit Blocks"] + scan.get("Shared Read Blocks", 0) < 10
        rescue = await store.rescue_expired_since(pool, "rescuer", floor, now=judged)
        assert rescue == ([(dead.id, "queued")], judged)
    finally:
        await holder.close()


async def test_a_lease_left_below_the_floor_is_taken_back_by_the_next_full_pass(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    rescuer = Rescuer(pool, worker_id="rescuer", interval=60, full_every=0.0)
    assert await rescuer.run_once() == []  # a full pass; the floor trails its clock by 5 s
    task = await tq.enqueue("noop")
    # A lease that ended before the floor: what a renewal that held the row
    # while a pass skipped it, then rolled back, leaves behind.
    await make_running(pool, task.id, worker="dead", attempts=1, expired=True)
    floored = await store.rescue_expired_since(pool, "rescuer", await pool.fetchval("SELECT now()"))
    assert floored.rescued == []
    # The full pass is due again after a hundred times its own length.
    rescued: list[tuple[uuid.UUID, str]] = []

    async def taken_back() -> bool:
        rescued.extend(await rescuer.run_once())
        return bool(rescued)

    await wait_until(taken_back, timeout=10)
    assert rescued == [(task.id, "queued")]
