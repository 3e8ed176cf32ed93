"""taskqueue.schedules.firing: the firing statement, time zones and DST,
catch-up and overlap, and what one check costs. Time is never slept
through: each check gets a fixed time, as the database's clock would read
then."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from taskqueue import db, store
from taskqueue.client import TaskQueue
from taskqueue.models import uuid7
from taskqueue.schedules import (
    CATCH_UP_CAP,
    fire_due,
    first_after,
    parse_timing,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


async def add(
    tq: TaskQueue, pool: asyncpg.Pool, name: str, *, start: datetime, **definition: Any
) -> None:
    """A schedule whose next slot is its first one after ``start``, as if it
    had been created then."""
    definition.setdefault("type", "noop")
    await tq.add_schedule(name, **definition)
    timing = parse_timing(
        definition.get("cron"), definition.get("every_seconds"), definition.get("timezone", "UTC")
    )
    await pool.execute(
        "UPDATE taskqueue.schedules SET next_run_at = $2 WHERE name = $1",
        name,
        first_after(timing, start),
    )


async def next_run_at(pool: asyncpg.Pool, name: str) -> datetime:
    value: datetime = await pool.fetchval(
        "SELECT next_run_at FROM taskqueue.schedules WHERE name = $1", name
    )
    return value


async def fired_slots(pool: asyncpg.Pool, name: str) -> list[datetime]:
    rows = await pool.fetch(
        "SELECT slot FROM taskqueue.tasks WHERE schedule = $1 ORDER BY slot", name
    )
    return [r["slot"] for r in rows]


async def follow_the_clock(pool: asyncpg.Pool, name: str, until: datetime) -> list[datetime]:
    """Check as workers would: a moment before each due slot (nothing may
    fire) and a second after it, until ``until``; returns every slot fired."""
    while (due := await next_run_at(pool, name)) <= until:
        early, _ = await fire_due(pool, now=due - timedelta(milliseconds=1))
        assert early == [], f"fired before {due}"
        (result,), _ = await fire_due(pool, now=due + timedelta(seconds=1))
        assert result.fired == [due]
    return await fired_slots(pool, name)


# -- the firing statement -------------------------------------------------------------


async def test_a_slot_fires_once_with_its_schedule_and_slot_on_the_task_and_event(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await add(tq, pool, "digest", start=utc(2025, 1, 1), cron="*/5 * * * *", payload={"n": 1})
    assert await fire_due(pool, now=utc(2025, 1, 1, 0, 4, 59)) == ([], False)
    (result,), _ = await fire_due(pool, now=utc(2025, 1, 1, 0, 5, 2))
    assert (result.name, result.fired) == ("digest", [utc(2025, 1, 1, 0, 5)])
    assert await fire_due(pool, now=utc(2025, 1, 1, 0, 5, 3)) == ([], False)  # fired already

    (task,) = await tq.list(schedule="digest")
    assert (task.type, task.name, task.payload, task.status) == (
        "noop",
        "digest",
        {"n": 1},
        "queued",
    )
    assert (task.schedule, task.slot) == ("digest", utc(2025, 1, 1, 0, 5))
    (event,) = await tq.history(task.id)
    assert event.event_type == "task_queued"
    assert event.detail == {"schedule": "digest", "slot": "2025-01-01T00:05:00+00:00"}
    assert await next_run_at(pool, "digest") == utc(2025, 1, 1, 0, 10)
    assert await tq.list(schedule="other") == []


async def test_the_compare_and_set_lets_one_caller_fire_a_slot(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await add(tq, pool, "once", start=utc(2025, 1, 1), cron="* * * * *")
    due = await next_run_at(pool, "once")

    async def fire() -> store.Fired:
        return await store.fire_schedule(
            pool,
            "once",
            expected=due,
            next_run_at=due + timedelta(minutes=1),
            slots=[due],
            task_ids=[uuid7()],
        )

    first, second = await fire(), await fire()
    assert (first.advanced, first.fired) == (True, [due])
    assert (second.advanced, second.fired) == (False, [])
    assert await fired_slots(pool, "once") == [due]


async def test_many_concurrent_checks_fire_each_slot_exactly_once(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    await add(tq, pool, "busy", start=utc(2025, 1, 1), every_seconds=1)
    await add(tq, pool, "calm", start=utc(2025, 1, 1), cron="*/2 * * * * *")
    workers = [await db.connect(database_url) for _ in range(12)]
    try:
        for step in range(1, 31):
            now = utc(2025, 1, 1) + timedelta(seconds=step, milliseconds=300)
            await asyncio.gather(*(fire_due(conn, now=now) for conn in workers))
    finally:
        await asyncio.gather(*(conn.close() for conn in workers))
    expected_busy = [utc(2025, 1, 1) + timedelta(seconds=s) for s in range(1, 31)]
    assert await fired_slots(pool, "busy") == expected_busy
    assert await fired_slots(pool, "calm") == expected_busy[1::2]
    ledger = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.schedule_fires WHERE outcome = 'fired'"
    )
    assert ledger == 45


async def test_the_slot_key_holds_when_next_run_at_is_moved_back(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await add(tq, pool, "rewound", start=utc(2025, 1, 1), cron="* * * * *")
    await fire_due(pool, now=utc(2025, 1, 1, 0, 1, 1))
    await fire_due(pool, now=utc(2025, 1, 1, 0, 2, 1))
    await pool.execute(
        "UPDATE taskqueue.schedules SET next_run_at = $1 WHERE name = 'rewound'",
        utc(2025, 1, 1, 0, 1),
    )
    (result,), _ = await fire_due(pool, now=utc(2025, 1, 1, 0, 3, 1))
    assert result.fired == [utc(2025, 1, 1, 0, 3)]  # 00:01 and 00:02 are not fired again
    assert await fired_slots(pool, "rewound") == [
        utc(2025, 1, 1, 0, 1),
        utc(2025, 1, 1, 0, 2),
        utc(2025, 1, 1, 0, 3),
    ]


async def test_paused_schedules_do_not_fire_and_resume_from_the_next_slot(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await add(tq, pool, "paused", start=utc(2025, 1, 1), cron="* * * * *")
    await tq.pause_schedule("paused")
    assert await fire_due(pool, now=utc(2025, 1, 1, 0, 1, 1)) == ([], False)
    resumed = await tq.resume_schedule("paused")
    now = await store.schedule_now(pool)
    assert not resumed.paused
    assert now < resumed.next_run_at <= now + timedelta(minutes=1)  # not the missed 00:01
    assert await fired_slots(pool, "paused") == []


# -- DST -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "cron", "start", "until", "expected"),
    [
        pytest.param(
            "Europe/Berlin",
            "30 2 * * *",
            utc(2025, 3, 29),
            utc(2025, 3, 31, 12),
            # 02:30 CET; then 02:30 does not exist: 03:00 CEST, the first valid time; 02:30 CEST
            [utc(2025, 3, 29, 1, 30), utc(2025, 3, 30, 1, 0), utc(2025, 3, 31, 0, 30)],
            id="berlin-spring-forward",
        ),
        pytest.param(
            "Europe/Berlin",
            "30 2 * * *",
            utc(2025, 10, 25),
            utc(2025, 10, 27, 12),
            # 02:30 CEST; on the 26th 02:30 happens twice, it fires in the first (CEST) only
            [utc(2025, 10, 25, 0, 30), utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)],
            id="berlin-fall-back",
        ),
        pytest.param(
            "Europe/Berlin",
            "0 30 2 * * *",
            utc(2025, 10, 25),
            utc(2025, 10, 27, 12),
            [utc(2025, 10, 25, 0, 30), utc(2025, 10, 26, 0, 30), utc(2025, 10, 27, 1, 30)],
            id="berlin-fall-back-six-fields",
        ),
        pytest.param(
            "America/New_York",
            "30 2 * * *",
            utc(2025, 3, 8),
            utc(2025, 3, 10, 12),
            # 02:30 EST; 03:00 EDT (after the gap); 02:30 EDT
            [utc(2025, 3, 8, 7, 30), utc(2025, 3, 9, 7, 0), utc(2025, 3, 10, 6, 30)],
            id="new-york-spring-forward",
        ),
        pytest.param(
            "America/New_York",
            "30 1 * * *",
            utc(2025, 11, 1),
            utc(2025, 11, 3, 12),
            # 01:30 EDT; on Nov 2 01:30 happens twice: once, in EDT; 01:30 EST
            [utc(2025, 11, 1, 5, 30), utc(2025, 11, 2, 5, 30), utc(2025, 11, 3, 6, 30)],
            id="new-york-fall-back",
        ),
    ],
)
async def test_a_daily_job_fires_once_a_day_across_dst_changes(
    tq: TaskQueue,
    pool: asyncpg.Pool,
    zone: str,
    cron: str,
    start: datetime,
    until: datetime,
    expected: list[datetime],
) -> None:
    await add(tq, pool, "nightly", start=start, cron=cron, timezone=zone)
    assert await follow_the_clock(pool, "nightly", until) == expected


@pytest.mark.parametrize(
    ("zone", "day_start", "day_end", "hours"),
    [
        ("Europe/Berlin", utc(2025, 3, 29, 23), utc(2025, 3, 30, 22), 23),
        ("Europe/Berlin", utc(2025, 10, 25, 22), utc(2025, 10, 26, 23), 25),
        ("America/New_York", utc(2025, 3, 9, 5), utc(2025, 3, 10, 4), 23),
        ("America/New_York", utc(2025, 11, 2, 4), utc(2025, 11, 3, 5), 25),
    ],
)
async def test_hourly_fires_every_real_hour_of_a_dst_day(
    tq: TaskQueue,
    pool: asyncpg.Pool,
    zone: str,
    day_start: datetime,
    day_end: datetime,
    hours: int,
) -> None:
    """The local day from midnight to midnight has 23 or 25 hours; each fires."""
    await add(
        tq, pool, "hourly", start=day_start - timedelta(seconds=1), cron="0 * * * *", timezone=zone
    )
    fired = await follow_the_clock(pool, "hourly", day_end - timedelta(seconds=1))
    assert fired == [day_start + timedelta(hours=h) for h in range(hours)]


# -- catch-up ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catch_up", "now", "fired", "missed"),
    [
        # Back at 13:00:30: 13:00 is on time and fires; 12:00-12:55 were missed.
        ("none", utc(2025, 1, 1, 13, 0, 30), [(13, 0)], (12, "12:00", "12:55")),
        ("latest", utc(2025, 1, 1, 13, 0, 30), [(13, 0)], (12, "12:00", "12:55")),
        ("all", utc(2025, 1, 1, 13, 0, 30), [(12, m) for m in range(0, 60, 5)] + [(13, 0)], None),
        # Back at 13:02:30: every slot is late; latest fires 13:00 alone.
        ("none", utc(2025, 1, 1, 13, 2, 30), [], (13, "12:00", "13:00")),
        ("latest", utc(2025, 1, 1, 13, 2, 30), [(13, 0)], (12, "12:00", "12:55")),
    ],
)
async def test_catch_up_after_an_hour_without_workers(
    tq: TaskQueue,
    pool: asyncpg.Pool,
    catch_up: str,
    now: datetime,
    fired: list[tuple[int, int]],
    missed: tuple[int, str, str] | None,
) -> None:
    await add(
        tq, pool, "report", start=utc(2025, 1, 1, 11, 59), cron="*/5 * * * *", catch_up=catch_up
    )
    assert await next_run_at(pool, "report") == utc(2025, 1, 1, 12)
    (result,), _ = await fire_due(pool, now=now)

    assert await fired_slots(pool, "report") == [utc(2025, 1, 1, h, m) for h, m in fired]
    assert result.fired == [utc(2025, 1, 1, h, m) for h, m in fired]
    assert await next_run_at(pool, "report") == utc(2025, 1, 1, 13, 5)
    ledger = await pool.fetch(
        "SELECT outcome, detail FROM taskqueue.schedule_fires WHERE outcome = 'missed'"
    )
    if missed is None:
        assert ledger == []
    else:
        count, first, last = missed
        (row,) = ledger
        assert row["detail"]["slots"] == count
        assert row["detail"]["first"] == f"2025-01-01T{first}:00+00:00"
        assert row["detail"]["last"] == f"2025-01-01T{last}:00+00:00"
        assert row["detail"]["catch_up"] == catch_up


async def test_catch_up_all_stops_at_the_cap_and_records_what_it_dropped(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await add(tq, pool, "minutely", start=utc(2025, 1, 1, 11, 59), cron="* * * * *", catch_up="all")
    await fire_due(pool, now=utc(2025, 1, 1, 14, 0, 30))
    fired = await fired_slots(pool, "minutely")
    assert len(fired) == CATCH_UP_CAP + 1
    assert (fired[0], fired[-1]) == (utc(2025, 1, 1, 12, 20), utc(2025, 1, 1, 14, 0))
    details = await tq.schedule_details("minutely")
    dropped = details.recent_fires[0]
    assert dropped.outcome == "missed"
    assert (dropped.detail["slots"], dropped.detail["cap"]) == (20, CATCH_UP_CAP)


# -- overlap ------------------------------------------------------------------------------


async def test_overlap_skip_records_the_slots_it_skips_while_the_last_task_is_live(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await add(tq, pool, "exclusive", start=utc(2025, 1, 1), cron="* * * * *", overlap="skip")
    await add(tq, pool, "relaxed", start=utc(2025, 1, 1), cron="* * * * *")
    await fire_due(pool, now=utc(2025, 1, 1, 0, 1, 1))
    (first,) = await tq.list(schedule="exclusive")

    # Still queued at 00:02, running at 00:03: both slots are skipped.
    await fire_due(pool, now=utc(2025, 1, 1, 0, 2, 1))
    claimed = await store.claim_tasks(pool, ["default"], 10, "w1", 30, types=["noop"])
    assert first.id in {c.id for c in claimed}
    await fire_due(pool, now=utc(2025, 1, 1, 0, 3, 1))
    assert await fired_slots(pool, "exclusive") == [utc(2025, 1, 1, 0, 1)]
    assert len(await fired_slots(pool, "relaxed")) == 3

    await pool.execute(
        "UPDATE taskqueue.tasks SET status = 'succeeded', locked_by = NULL,"
        " locked_until = NULL WHERE schedule IS NOT NULL"
    )
    # Finished: the next slot fires again; of late slots fired together, only the first.
    await fire_due(pool, now=utc(2025, 1, 1, 0, 4, 1))
    assert await fired_slots(pool, "exclusive") == [utc(2025, 1, 1, 0, 1), utc(2025, 1, 1, 0, 4)]

    details = await tq.schedule_details("exclusive")
    outcomes = [(f.outcome, f.slot) for f in reversed(details.recent_fires)]
    assert outcomes == [
        ("fired", utc(2025, 1, 1, 0, 1)),
        ("skipped", utc(2025, 1, 1, 0, 2)),
        ("skipped", utc(2025, 1, 1, 0, 3)),
        ("fired", utc(2025, 1, 1, 0, 4)),
    ]
    skipped = details.recent_fires[1]
    assert skipped.detail == {"reason": "overlap", "live_task": str(first.id)}
    assert skipped.task_id is None
    assert details.recent_fires[0].task_status == "queued"
    assert details.recent_fires[-1].task_status == "succeeded"


async def test_overlap_skip_with_catch_up_all_fires_only_the_first_late_slot(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await add(
        tq,
        pool,
        "exclusive",
        start=utc(2025, 1, 1),
        cron="*/10 * * * *",
        overlap="skip",
        catch_up="all",
    )
    (result,), _ = await fire_due(pool, now=utc(2025, 1, 1, 1, 0, 5))
    assert result.fired == [utc(2025, 1, 1, 0, 10)]
    assert result.skipped == [utc(2025, 1, 1, 0, m) for m in (20, 30, 40, 50)] + [
        utc(2025, 1, 1, 1, 0)
    ]


# -- deleting and the ledger ------------------------------------------------------------------


async def test_deleting_a_schedule_keeps_its_tasks_and_their_history(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await add(tq, pool, "doomed", start=utc(2025, 1, 1), cron="* * * * *")
    await fire_due(pool, now=utc(2025, 1, 1, 0, 1, 1))
    triggered = await tq.trigger_schedule("doomed")
    await tq.delete_schedule("doomed")
    kept = await tq.list(schedule="doomed")
    assert {t.id for t in kept} >= {triggered.id}
    assert len(kept) == 2
    for task in kept:
        assert [e.event_type for e in await tq.history(task.id)] == ["task_queued"]
    ledger = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.schedule_fires WHERE schedule = 'doomed'"
    )
    assert ledger == 2
    assert await fire_due(pool, now=utc(2025, 1, 1, 0, 5, 1)) == ([], False)


# -- cost ---------------------------------------------------------------------------------------


async def test_the_check_reads_only_due_rows_of_ten_thousand_schedules_in_under_5ms(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """10,000 schedules (a tenth paused), their slots spread over a day, 5
    due: the check walks the due index and stops at the first row not
    due; four workers checking at once each take well under 5 ms."""
    await pool.execute(
        "INSERT INTO taskqueue.schedules (name, cron, type, next_run_at, paused)"
        " SELECT 's' || i, '* * * * *', 'noop',"
        "        now() + (i - 5.5) * interval '8.64 seconds', i % 10 = 0"
        " FROM generate_series(1, 10000) AS i"
    )
    await pool.execute("ANALYZE taskqueue.schedules")
    (plan,) = await pool.fetchval(  # json: decoded by the pool's codec
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + store.query("due_schedules"), None, 100
    )
    scan = plan["Plan"]
    while scan["Node Type"] == "Limit":
        scan = scan["Plans"][0]
    assert scan["Node Type"] == "Index Scan", plan
    assert scan["Index Name"] == "schedules_due_idx"
    assert scan["Actual Rows"] == 5  # s1..s5 due; s6 not yet
    assert plan["Execution Time"] < 5.0, plan

    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    timings: list[float] = []

    async def check(conn: asyncpg.Connection) -> None:
        for _ in range(200):
            started = time.perf_counter()
            await conn.fetch(store.query("due_schedules"), None, 100)
            timings.append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(check(conn) for conn in conns))
    finally:
        await asyncio.gather(*(conn.close() for conn in conns))
    median_ms = statistics.median(timings) * 1000
    p99_ms = statistics.quantiles(timings, n=100)[98] * 1000
    print(
        f"\ncheck with 10,000 schedules: server {plan['Execution Time']:.3f} ms;"
        f" 4 workers at once, round trip median {median_ms:.3f} ms, p99 {p99_ms:.3f} ms"
    )
    assert median_ms < 5.0


async def test_the_readme_ledger_query_shows_what_became_of_each_slot(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Recurring tasks", 1)[1].split("\n## ", 1)[0]
    (sql,) = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    await tq.add_schedule("digest", cron="* * * * *", type="noop", overlap="skip")
    due = await next_run_at(pool, "digest")
    await fire_due(pool, now=due + timedelta(seconds=1))
    await fire_due(pool, now=due + timedelta(minutes=1, seconds=1))
    triggered = await tq.trigger_schedule("digest")
    rows = await pool.fetch(sql)
    assert [(r["outcome"], r["status"]) for r in rows] == [
        ("triggered", "queued"),
        ("skipped", None),
        ("fired", "queued"),
    ]
    assert rows[0]["task_id"] == triggered.id
