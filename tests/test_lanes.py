"""The worker's lane keeper on a real server: one pass raises the floors of
its lanes, lowers one that passed a queued task, and opens a lane for
queued tasks written without one, saying so; a running worker starts a
task whose producer committed long after a floor passed it at its next
pass, not at the seldom full check."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.worker.lanes import LaneKeeper
from tests.helpers import all_in_status, running_worker, wait_until


def keeper(pool: asyncpg.Pool) -> LaneKeeper:
    return LaneKeeper(
        pool, queues=["default"], types=["noop"], grace=0.0, raise_every=0.0, check_every=0.0
    )


async def test_a_pass_raises_the_floors_past_what_was_claimed(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    [claimed] = await store.claim_tasks(pool, ["default"], 10, "w", 30, types=["noop"])
    lanes = keeper(pool)
    await lanes.run_once()
    floor = await pool.fetchval("SELECT floor_at FROM taskqueue.claim_lanes")
    assert floor is not None and floor >= claimed.run_at
    assert lanes.readings() == {
        "failures": 0,
        "raised": 1,
        "caught": 0,
        "lowered": 0,
        "opened": 0,
    }


async def test_a_pass_lowers_a_floor_above_a_queued_task_and_opens_missing_lanes(
    tq: TaskQueue, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    await tq.enqueue("noop")
    await store.claim_tasks(pool, ["default"], 10, "w", 30, types=["noop"])
    lanes = keeper(pool)
    await lanes.run_once()
    floor = await pool.fetchval("SELECT floor_at FROM taskqueue.claim_lanes")
    hidden, handmade = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO taskqueue.tasks (id, type, run_at) VALUES ($1, 'noop', $3),"
        " ($2, 'noop', now())",
        hidden,
        handmade,
        floor - timedelta(seconds=1),
    )
    await pool.execute("UPDATE taskqueue.tasks SET priority = 4 WHERE id = $1", handmade)
    # A second keeper: the first one's schedule for opening lanes has not come round.
    again = keeper(pool)
    with caplog.at_level(logging.INFO, logger="taskqueue.worker"):
        await again.run_once()
    assert again.readings()["lowered"] == 1
    assert again.readings()["opened"] == 1
    assert "priority 4 had no claim lane" in caplog.text
    claimed = await store.claim_tasks(pool, ["default"], 10, "w", 30, types=["noop"])
    assert [t.id for t in claimed] == [handmade, hidden]


async def test_a_running_worker_starts_a_task_committed_long_after_a_floor_passed_it(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    async with running_worker(database_url):
        first = await tq.enqueue("noop")
        await wait_until(lambda: all_in_status(pool, [first.id], "succeeded"))
        # The full check (take_lane_checks.sql) stays off the lane: only the
        # catch at a pass can find what a floor passed.
        await pool.execute("UPDATE taskqueue.claim_lanes SET checked_at = now() + interval '1 day'")
        async with pool.acquire() as producer, producer.transaction():
            # A producer that enqueues, then works on before it commits,
            # until the worker's raises have passed its task.
            late = await tq.enqueue("noop", connection=producer)
            await wait_until(lambda: _floor_above(pool, late.run_at), timeout=10)
        await wait_until(lambda: all_in_status(pool, [late.id], "succeeded"), timeout=5)


async def _floor_above(pool: asyncpg.Pool, run_at: datetime) -> bool:
    floor = await pool.fetchval("SELECT floor_at FROM taskqueue.claim_lanes")
    return floor is not None and floor > run_at
