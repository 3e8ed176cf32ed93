"""Claim lanes on a real server: enqueueing opens a task's lane, raising a
floor never passes a queued task nor comes closer than the grace to the
present, the safety nets find what a floor or a missing lane hides, and
with the xmin horizon held a claim reads only what lies above the floor."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import ClaimedTask, NewTask
from taskqueue.store import Lane
from tests.helpers import plan_nodes

LANE = Lane("default", "noop", 0)


async def floor_of(pool: asyncpg.Pool, lane: Lane) -> datetime | None:
    floor: datetime | None = await pool.fetchval(
        "SELECT floor_at FROM taskqueue.claim_lanes"
        " WHERE queue = $1 AND type = $2 AND priority = $3",
        *lane,
    )
    return floor


async def claim(
    pool: asyncpg.Pool, n: int = 100, types: list[str] | None = None
) -> list[uuid.UUID]:
    tasks = await store.claim_tasks(pool, ["default"], n, "w", 30, types=types or ["noop"])
    return [t.id for t in tasks]


async def insert_by_hand(pool: asyncpg.Pool, *, type: str = "noop", run_at: datetime) -> uuid.UUID:
    task_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO taskqueue.tasks (id, type, run_at) VALUES ($1, $2, $3)", task_id, type, run_at
    )
    return task_id


async def test_enqueue_opens_one_lane_per_queue_type_and_priority(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many(
        [NewTask(type="noop"), NewTask(type="noop", priority=5), NewTask(type="sleep")]
    )
    await tq.enqueue("noop", queue="other")
    lanes = await pool.fetch(
        "SELECT queue, type, priority, floor_at FROM taskqueue.claim_lanes"
        " ORDER BY queue, type, priority"
    )
    assert [(r["queue"], r["type"], r["priority"]) for r in lanes] == [
        ("default", "noop", 0),
        ("default", "noop", 5),
        ("default", "sleep", 0),
        ("other", "noop", 0),
    ]
    assert all(r["floor_at"] is None for r in lanes), "a new lane is read from its start"


async def test_a_raised_floor_stops_at_the_oldest_queued_task_and_behind_the_grace(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    first = await tq.enqueue_many([NewTask(type="noop") for _ in range(5)])
    later = await tq.enqueue("noop", delay=3600)
    assert len(await claim(pool, 3)) == 3
    raised = await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=0.0)
    oldest_left = await pool.fetchval(
        "SELECT min(run_at) FROM taskqueue.tasks WHERE status = 'queued'"
    )
    assert raised == {LANE: oldest_left}
    assert oldest_left == first[0].run_at  # all five share the statement's time
    # Nothing due left: the floor follows the clock (here with no grace) and
    # never passes the task due in an hour.
    assert len(await claim(pool)) == 2
    raised = await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=0.0)
    now = await pool.fetchval("SELECT clock_timestamp()")
    floor = raised[LANE]
    assert floor is not None and oldest_left < floor <= now < later.run_at
    # With a grace, a floor stays that far behind the clock.
    await tq.enqueue("noop", priority=7)
    await claim(pool)
    raised = await store.advance_lanes(pool, ["default"], ["noop"], grace=60.0, every=0.0)
    now = await pool.fetchval("SELECT clock_timestamp()")
    floor = raised[Lane("default", "noop", 7)]
    assert floor is not None and now - timedelta(seconds=61) < floor <= now - timedelta(seconds=60)
    # Raised at most once per `every` seconds, by whichever worker comes first.
    assert await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=60.0) == {}


async def test_claims_keep_their_order_and_see_new_tasks_above_a_raised_floor(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop", payload={"i": i}) for i in range(10)])
    await claim(pool, 4)
    await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=0.0)
    high = await tq.enqueue("noop", priority=3)
    newer = await tq.enqueue("noop", payload={"i": 10})
    got = await store.claim_tasks(pool, ["default"], 100, "w", 30, types=["noop"])
    assert got[0].id == high.id, "a higher priority's lane is read first"
    assert [json.loads(t.payload)["i"] for t in got[1:]] == [4, 5, 6, 7, 8, 9, 10]
    assert got[-1].id == newer.id


async def test_a_task_below_the_floor_is_found_by_the_check_and_claimed_first(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop") for _ in range(3)])
    await claim(pool, 1)
    await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=0.0)
    floor = await floor_of(pool, LANE)
    assert floor is not None
    # As a producer whose transaction committed long after its INSERT began.
    hidden = await insert_by_hand(pool, run_at=floor - timedelta(seconds=5))
    assert hidden not in await claim(pool, 1)
    assert await store.check_lanes(pool, ["default"], ["noop"], every=0.0) == [LANE]
    assert await floor_of(pool, LANE) == floor - timedelta(seconds=5)
    assert await claim(pool, 1) == [hidden]
    # A lane checked lately is left alone; nothing more to lower.
    assert await store.check_lanes(pool, ["default"], ["noop"], every=60.0) == []
    assert await store.check_lanes(pool, ["default"], ["noop"], every=0.0) == []


def hidden_at(floor: datetime) -> datetime:
    return floor - timedelta(seconds=5)


async def test_the_check_reads_a_lane_without_holding_it_and_lowers_it_after_a_raise(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop") for _ in range(3)])
    await claim(pool, 1)
    await raise_floors(pool)
    floor = await floor_of(pool, LANE)
    assert floor is not None
    hidden = await insert_by_hand(pool, run_at=hidden_at(floor))
    (key,) = await store.take_lane_checks(pool, ["default"], ["noop"], every=0.0)
    # Taken: another worker's check (due every minute) leaves the lane alone.
    assert await store.take_lane_checks(pool, ["default"], ["noop"], every=60.0) == []
    async with pool.acquire() as checker, checker.transaction():
        # The read, however long it walks, holds nothing: the lane's other
        # tasks are claimed and a raise moves its floor on meanwhile.
        oldest = await store.find_oldest_queued_tasks(checker, [key])
        assert oldest == {key: hidden_at(floor)}
        assert len(await claim(pool, 10)) == 2
        await raise_floors(pool)
        raised = await floor_of(pool, LANE)
        assert raised is not None and raised > floor
    assert await store.lower_lanes(pool, {key: hidden_at(floor)}) == [LANE]
    assert await floor_of(pool, LANE) == hidden_at(floor)
    assert await claim(pool, 10) == [hidden]


async def test_the_check_skips_a_lane_held_elsewhere_and_lowers_it_at_its_next_turn(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    await claim(pool)
    await raise_floors(pool)
    floor = await floor_of(pool, LANE)
    assert floor is not None
    hidden = await insert_by_hand(pool, run_at=hidden_at(floor))
    (key,) = await store.take_lane_checks(pool, ["default"], ["noop"], every=0.0)
    oldest = await store.find_oldest_queued_tasks(pool, [key])
    assert oldest == {key: hidden_at(floor)}
    async with pool.acquire() as raiser:
        transaction = raiser.transaction()
        await transaction.start()
        # A raise (or a producer lowering the lane, perhaps in a long
        # transaction) that has not committed: the check neither waits for
        # it nor counts the lane as lowered.
        assert LANE in await store.advance_lanes(
            raiser, ["default"], ["noop"], grace=0.0, every=0.0
        )
        lowered = await asyncio.wait_for(
            store.lower_lanes(pool, {key: hidden_at(floor)}), timeout=5
        )
        assert lowered == []
        # Nor does the next check (the lane is skipped as it is taken).
        assert await store.check_lanes(pool, ["default"], ["noop"], every=0.0) == []
        await transaction.commit()
    assert await claim(pool) == []
    assert await store.check_lanes(pool, ["default"], ["noop"], every=0.0) == [LANE]
    assert await claim(pool) == [hidden]


async def catch(pool: asyncpg.Pool, running: list[int]) -> store.Catch:
    return await store.catch_late_tasks(pool, running, ["default"], ["noop"])


async def raise_floors(pool: asyncpg.Pool, until: datetime | None = None) -> None:
    await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=0.0, until=until)


async def test_a_task_whose_transaction_outlasted_a_raise_is_caught_once_it_commits(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    await claim(pool)
    async with pool.acquire() as producer, producer.transaction():
        # A producer that enqueues, then works on before it commits.
        late = await tq.enqueue("noop", connection=producer)
        xid = await producer.fetchval("SELECT pg_current_xact_id()")
        first = await catch(pool, [])
        assert first.lowered == 0 and xid in first.running
        # The raise cannot see the task: its floor passes it.
        await raise_floors(pool)
        floor = await floor_of(pool, LANE)
        assert floor is not None and floor > late.run_at
        # Still open: nothing to catch yet, and it stays on the list.
        second = await catch(pool, first.running)
        assert second.lowered == 0 and xid in second.running
    assert late.id not in await claim(pool)
    # Committed: the next catch lowers the floor to it, and it is claimed.
    third = await catch(pool, second.running)
    assert third.lowered == 1 and xid not in third.running
    assert await floor_of(pool, LANE) == late.run_at
    assert await claim(pool) == [late.id]


async def test_a_raise_passes_nothing_begun_after_the_catch_before_it(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    await claim(pool)
    before = await catch(pool, [])
    # A transaction that began after the catch took its list: not on it.
    async with pool.acquire() as producer, producer.transaction():
        late = await tq.enqueue("noop", connection=producer)
        assert await producer.fetchval("SELECT pg_current_xact_id()") not in before.running
        await raise_floors(pool, until=before.taken_at)
        floor = await floor_of(pool, LANE)
        assert floor is not None and floor <= before.taken_at < late.run_at
    # So its task is above the floor once it commits, with nothing to catch.
    assert (await catch(pool, before.running)).lowered == 0
    assert await claim(pool) == [late.id]


async def test_the_catch_lowers_no_floor_for_a_task_a_raise_saw_or_a_rollback(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    await claim(pool)
    async with pool.acquire() as producer, producer.transaction():
        seen = await tq.enqueue("noop", connection=producer)
        running = (await catch(pool, [])).running
    # Committed before the raise: it sees the task and stops below it.
    await raise_floors(pool)
    floor = await floor_of(pool, LANE)
    assert floor is not None and floor <= seen.run_at
    assert (await catch(pool, running)).lowered == 0
    assert await floor_of(pool, LANE) == floor
    assert await claim(pool) == [seen.id]
    # Rolled back after a raise passed its task: nothing to lower.
    async with pool.acquire() as producer:
        transaction = producer.transaction()
        await transaction.start()
        await tq.enqueue("noop", connection=producer)
        running = (await catch(pool, [])).running
        await raise_floors(pool)
        await transaction.rollback()
    passed = await floor_of(pool, LANE)
    assert (await catch(pool, running)).lowered == 0
    assert await floor_of(pool, LANE) == passed


async def test_a_task_due_in_the_past_lowers_its_lanes_floor_in_its_own_statement(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    await claim(pool)
    await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=0.0)
    floor = await floor_of(pool, LANE)
    assert floor is not None
    past = floor - timedelta(minutes=10)
    document = json.dumps(
        [
            {
                "id": str(uuid.uuid4()),
                "queue": "default",
                "type": "noop",
                "name": "",
                "payload": {},
                "priority": 0,
                "max_retries": 3,
                "timeout_seconds": 30,
                "run_at": past.isoformat(),
                "delay_us": 0,
                "idempotency_key": None,
            }
            for _ in range(2)
        ]
    )
    async with pool.acquire() as producer:
        transaction = producer.transaction()
        await transaction.start()
        await producer.fetchrow(store.query("enqueue_tasks"), document.encode())
        # Uncommitted: a raise meanwhile skips the lane (it is locked) ...
        assert await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=0.0) == {}
        await transaction.commit()
    # ... and after the commit the floor is the task's run_at, so it is claimed.
    assert await floor_of(pool, LANE) == past
    assert len(await claim(pool)) == 2


async def test_queued_tasks_without_a_lane_get_one_from_the_safety_net(
    pool: asyncpg.Pool,
) -> None:
    task_id = await insert_by_hand(pool, type="handmade", run_at=datetime.now(UTC))
    assert await claim(pool, types=["handmade"]) == []
    assert await store.open_missing_lanes(pool, ["default"]) == [Lane("default", "handmade", 0)]
    assert await store.open_missing_lanes(pool, ["default"]) == []
    assert await claim(pool, types=["handmade"]) == [task_id]


async def test_retry_schedule_and_trigger_open_lanes(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    task = await tq.enqueue("noop", queue="retried")
    await tq.cancel(task.id)
    await pool.execute("DELETE FROM taskqueue.claim_lanes")
    await tq.retry(task.id)
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.claim_lanes") == 1
    await tq.schedules.add("every-minute", type="noop", cron="* * * * *", queue="fired")
    await tq.schedules.trigger("every-minute")
    assert (
        await pool.fetchval("SELECT count(*) FROM taskqueue.claim_lanes WHERE queue = 'fired'") == 1
    )


async def test_with_the_horizon_held_a_claim_reads_only_above_the_floor(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    holder = await asyncpg.connect(database_url)
    try:
        holding = holder.transaction()
        await holding.start()
        await holder.fetchval("SELECT pg_current_xact_id()")  # vacuum can remove nothing now
        for _ in range(20):
            await tq.enqueue_many([NewTask(type="noop") for _ in range(100)])
            ids = await claim(pool)
            assert len(ids) == 100
        await pool.execute("VACUUM taskqueue.tasks")  # removes none of them
        await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=0.0)
        await tq.enqueue_many([NewTask(type="noop") for _ in range(10)])
        async with pool.acquire() as conn, conn.transaction():
            plan = await conn.fetch(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + store.statement("claim_tasks"),
                ["default"],
                10,
                "w",
                30.0,
                ["noop"],
                [],  # types that read their parents' results
            )
        (scan,) = plan_nodes(plan[0][0][0]["Plan"], "tasks_claim_idx")
        # 2,000 dead entries lie below the floor; the claim read none of them.
        assert scan["Actual Rows"] == 10
        assert scan["Shared Hit Blocks"] + scan.get("Shared Read Blocks", 0) < 20
        assert (
            await pool.fetchval(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'tasks'"
            )
            >= 2000
        )
    finally:
        await holder.close()


async def test_claimers_take_each_task_once_in_order_while_floors_are_raised(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    for batch in range(4):
        await tq.enqueue_many(
            [
                NewTask(type="noop", priority=i % 3, payload={"i": batch * 300 + i})
                for i in range(300)
            ]
        )
    stop = asyncio.Event()

    async def raiser() -> int:
        raises = 0
        while not stop.is_set():
            raises += len(
                await store.advance_lanes(pool, ["default"], ["noop"], grace=0.0, every=0.0)
            )
            await asyncio.sleep(0)
        return raises

    async def claimer(worker_id: str) -> list[ClaimedTask]:
        claimed: list[ClaimedTask] = []
        while batch := await store.claim_tasks(
            pool, ["default"], 29, worker_id, 30, types=["noop"]
        ):
            # Within a claim: priority first, then run_at, then id.
            keys = [(-t.priority, t.run_at, t.id) for t in batch]
            assert keys == sorted(keys)
            claimed.extend(batch)
        return claimed

    raising = asyncio.ensure_future(raiser())
    results = await asyncio.gather(*(claimer(f"c{n}") for n in range(4)))
    stop.set()
    assert await raising > 0
    ids = [t.id for result in results for t in result]
    assert len(ids) == 1200 and len(set(ids)) == 1200
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE status = 'queued'") == 0


async def test_a_producer_never_waits_for_a_raise_or_check_of_its_lane(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    await claim(pool)
    async with pool.acquire() as keeper:
        transaction = keeper.transaction()
        await transaction.start()
        # Each updates the lane's row, and its transaction is left open (a
        # stalled worker, or the old check, which walked every dead entry
        # with the lane updated).
        assert await store.advance_lanes(keeper, ["default"], ["noop"], grace=0.0, every=0.0)
        assert await store.take_lane_checks(keeper, ["default"], ["noop"], every=0.0)
        # The lane exists, so enqueueing into it never waits on that row.
        task = await asyncio.wait_for(tq.enqueue("noop"), timeout=5)
        await transaction.rollback()
    assert await claim(pool) == [task.id]
