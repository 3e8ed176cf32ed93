"""The history's daily partitions: made ahead by any caller (at once, too),
the default partition as a safety net that drains when a day's partition is
made, retention by dropping whole days, and every reader of the history
working across partitions (taskqueue/store/partitions.py and
taskqueue/worker/partitions.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.worker.partitions import PartitionKeeper
from tests.helpers import run_audit

FAR = datetime(2031, 5, 5, 12, tzinfo=UTC)  # days no test run has partitions for


def day_name(moment: datetime) -> str:
    return f"task_events_{moment.astimezone(UTC):%Y%m%d}"


def as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{role}:x@{parts.hostname}:{parts.port}"))


async def names(pool: asyncpg.Pool) -> list[str]:
    return [p.name for p in await store.event_partitions(pool)]


async def insert_event(pool: asyncpg.Pool, at: datetime, task_id: uuid.UUID | None = None) -> str:
    """An event written at ``at``; returns the partition it landed in."""
    where: str = await pool.fetchval(
        "INSERT INTO taskqueue.task_events (task_id, at, event_type, status, attempt)"
        " VALUES ($1, $2, 'task_queued', 'queued', 0) RETURNING tableoid::regclass::text",
        task_id or uuid.uuid4(),
        at,
    )
    return where.removeprefix("taskqueue.")


async def test_migrating_leaves_today_and_the_next_three_days_partitioned(
    pool: asyncpg.Pool,
) -> None:
    today = await store.database_now(pool)
    listed = await store.event_partitions(pool)
    assert listed[0].is_default and listed[0].rows == 0
    days = {p.name for p in listed[1:]}
    assert {day_name(today + timedelta(days=n)) for n in range(4)} <= days
    made = await store.ensure_event_partitions(pool, 3)
    assert made == []  # nothing left to do
    assert await insert_event(pool, today) == day_name(today)


async def test_two_callers_at_once_make_each_partition_once(pool: asyncpg.Pool) -> None:
    first, second = await asyncio.gather(
        store.ensure_event_partitions(pool, 5, now=FAR),
        store.ensure_event_partitions(pool, 5, now=FAR),
    )
    expected = [day_name(FAR + timedelta(days=n)) for n in range(6)]
    assert sorted(first + second) == expected  # all made, none twice, no error
    assert await store.ensure_event_partitions(pool, 5, now=FAR) == []
    listed = await store.event_partitions(pool)
    by_name = {p.name: p for p in listed}
    assert by_name[expected[0]].starts == datetime(2031, 5, 5, tzinfo=UTC)
    assert by_name[expected[0]].ends == datetime(2031, 5, 6, tzinfo=UTC)


async def test_days_ahead_is_bounded(pool: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError):
        await store.ensure_event_partitions(pool, -1)


async def test_an_event_without_a_partition_waits_in_the_default_and_moves_home(
    pool: asyncpg.Pool,
) -> None:
    other_day = FAR + timedelta(days=40)
    assert await insert_event(pool, FAR) == "task_events_default"
    assert await insert_event(pool, other_day) == "task_events_default"
    assert await store.default_partition_rows(pool) == 2

    made = await store.ensure_event_partitions(pool, 0, now=FAR)

    # Its own day is made, and so is any other day the default partition held.
    assert made == [day_name(FAR), day_name(other_day)]
    assert await store.default_partition_rows(pool) == 0
    where = await pool.fetch(
        "SELECT tableoid::regclass::text AS part, at FROM taskqueue.task_events"
        " WHERE at >= $1 ORDER BY at",
        FAR,
    )
    assert [(r["part"], r["at"]) for r in where] == [
        (f"taskqueue.{day_name(FAR)}", FAR),
        (f"taskqueue.{day_name(other_day)}", other_day),
    ]


async def make_old_days(pool: asyncpg.Pool, now: datetime, ages: list[int]) -> None:
    for age in ages:
        day = now - timedelta(days=age)
        await store.ensure_event_partitions(pool, 0, now=day)
        for _ in range(3):
            await insert_event(pool, day)


async def test_dropping_takes_whole_old_days_with_their_rows_and_keeps_newer_ones(
    pool: asyncpg.Pool,
) -> None:
    now = await store.database_now(pool)
    await make_old_days(pool, now, [45, 40, 31, 29, 2])
    await insert_event(pool, now)
    cutoff = now - timedelta(days=30)

    dropped = await store.drop_event_partitions(pool, cutoff)

    old = [now - timedelta(days=age) for age in (45, 40, 31)]
    assert [p.name for p in dropped] == [day_name(d) for d in old]
    assert all(p.ends is not None and p.ends <= cutoff for p in dropped)
    left = await names(pool)
    assert not set(left) & {day_name(d) for d in old}
    assert {day_name(now - timedelta(days=29)), day_name(now - timedelta(days=2))} <= set(left)
    # Their rows went with them; nothing else did.
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.task_events") == 3 + 3 + 1
    assert await store.drop_event_partitions(pool, cutoff) == []  # idempotent


async def test_today_is_never_dropped_whatever_the_cut_off(pool: asyncpg.Pool) -> None:
    now = await store.database_now(pool)
    await insert_event(pool, now)
    dropped = await store.drop_event_partitions(pool, now + timedelta(days=10))
    assert day_name(now) not in {p.name for p in dropped}
    assert day_name(now) in await names(pool)
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.task_events") == 1


async def test_history_audit_and_the_stream_read_across_partitions(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    task = await tq.enqueue("noop")
    now = await store.database_now(pool)
    yesterday = now - timedelta(days=1)
    await store.ensure_event_partitions(pool, 0, now=yesterday)
    # Its task_queued event moves into yesterday's partition (a partition key
    # update moves the row); the rest of its trail is written today.
    await pool.execute(
        "UPDATE taskqueue.task_events SET at = $2 WHERE task_id = $1", task.id, yesterday
    )
    (claimed,) = await store.claim_tasks(pool, ["default"], 1, "w", 30, types=["noop"])
    await store.complete_tasks(
        pool,
        [Outcome(task_id=claimed.id, attempt=claimed.attempt, kind=OutcomeKind.SUCCEEDED)],
        "w",
    )
    parts = await pool.fetch(
        "SELECT DISTINCT tableoid::regclass::text AS p FROM taskqueue.task_events"
        " WHERE task_id = $1",
        task.id,
    )
    assert {r["p"] for r in parts} == {
        f"taskqueue.{day_name(yesterday)}",
        f"taskqueue.{day_name(now)}",
    }

    history = await tq.history(task.id)
    assert [e.event_type for e in history] == ["task_queued", "task_started", "task_succeeded"]
    streamed = await store.events_after(pool, 0)
    assert [e.event_type for e in streamed] == ["task_queued", "task_started", "task_succeeded"]
    assert [e.id for e in streamed] == sorted(e.id for e in streamed)
    assert await store.last_event_id(pool) == streamed[-1].id
    assert [e.id for e in await store.events_by_id(pool, [streamed[0].id])] == [streamed[0].id]
    assert await run_audit(pool) == []
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM taskqueue.task_history WHERE task_id = $1", task.id
        )
        == 3
    )


async def test_stream_reads_use_each_partitions_index(pool: asyncpg.Pool) -> None:
    now = await store.database_now(pool)
    await make_old_days(pool, now, [3, 2, 1])
    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")  # tiny tables: judge the access path
        for statement, args in (
            ("events_after", (0, 100)),
            ("task_history", (uuid.uuid4(),)),
            ("last_event_id", ()),
        ):
            plan = "\n".join(
                r[0] for r in await conn.fetch(f"EXPLAIN {store.query(statement)}", *args)
            )
            assert "task_events_default" in plan, statement
            assert "Seq Scan on task_events" not in plan, (statement, plan)
        await conn.execute("RESET enable_seqscan")


async def test_a_time_window_reads_only_its_days(pool: asyncpg.Pool) -> None:
    now = await store.database_now(pool)
    await make_old_days(pool, now, [5, 4, 3, 2, 1])
    async with pool.acquire() as conn:
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                f"EXPLAIN (ANALYZE, COSTS OFF) {store.query('dashboard_throughput')}",
                now - timedelta(hours=1),
                None,
            )
        )
    assert day_name(now) in plan
    assert day_name(now - timedelta(days=3)) not in plan


async def test_the_keeper_makes_days_ahead_and_drops_days_past_retention(
    pool: asyncpg.Pool,
) -> None:
    now = await store.database_now(pool)
    await make_old_days(pool, now, [40, 20])
    keeper = PartitionKeeper(pool, retain_events=timedelta(days=30), days_ahead=5)

    made, dropped = await keeper.run_once()

    assert made == [day_name(now + timedelta(days=n)) for n in (4, 5)]
    assert [p.name for p in dropped] == [day_name(now - timedelta(days=40))]
    assert keeper.readings()["created"] == 2 and keeper.readings()["dropped"] == 1
    assert await keeper.run_once() == ([], [])


async def test_with_a_direct_url_the_keeper_works_on_a_connection_of_its_own(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # The pool (a pooler's, in production) is closed: only the direct
    # connection, opened for the pass and closed after it, can do the work.
    now = await store.database_now(pool)
    closed = await asyncpg.create_pool(database_url, min_size=0, max_size=1)
    await closed.close()
    keeper = PartitionKeeper(
        closed, retain_events=timedelta(days=30), days_ahead=4, direct_url=database_url
    )
    made, _ = await keeper.run_once()
    assert made == [day_name(now + timedelta(days=4))]
    left = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
        "taskqueue-worker-maintenance",
    )
    assert left == 0


async def test_the_keeper_survives_a_role_without_the_right_to_maintain(
    pool: asyncpg.Pool, database_url: str
) -> None:
    role = f"tq_nobody_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'x'")
    try:
        await pool.execute(f"GRANT USAGE ON SCHEMA taskqueue TO {role}")
        nobody = await asyncpg.create_pool(as_role(database_url, role), min_size=1, max_size=1)
        try:
            keeper = PartitionKeeper(nobody, retain_events=timedelta(days=30))
            assert await keeper.run_once() == ([], [])
            assert keeper.readings()["denied"] == 1
        finally:
            await nobody.close()
    finally:
        await pool.execute(f"DROP OWNED BY {role}")
        await pool.execute(f"DROP ROLE {role}")


async def test_many_tasks_write_their_events_into_today(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    await tq.enqueue_many([NewTask(type="noop") for _ in range(20)])
    now = await store.database_now(pool)
    rows = await pool.fetch(
        "SELECT tableoid::regclass::text AS p, count(*) AS n FROM taskqueue.task_events GROUP BY 1"
    )
    assert [(r["p"], r["n"]) for r in rows] == [(f"taskqueue.{day_name(now)}", 20)]
