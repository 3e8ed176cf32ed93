"""The worker's lane keeper on a real server: one pass raises the floors of
its lanes, lowers one that passed a queued task, and opens a lane for
queued tasks written without one, saying so."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.worker.lanes import LaneKeeper


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
    assert lanes.readings() == {"failures": 0, "raised": 1, "lowered": 0, "opened": 0}


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
