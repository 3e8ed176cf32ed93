"""The event tail: every event once, in id order, never past an id whose
transaction has not committed yet; a gap that never fills is passed over
after its timeout, and an event that commits late still arrives."""

from __future__ import annotations

import uuid

import asyncpg

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.events import EventTail
from taskqueue.models import NewTask


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def insert_event(conn: store.Executor, task_id: uuid.UUID) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt)"
            " VALUES ($1, 'task_queued', 'queued', 0) RETURNING id",
            task_id,
        )
    )


async def test_the_tail_returns_each_event_once_in_order_with_queue_and_type(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    before = await tq.enqueue("noop")
    tail = await EventTail.from_now(pool)
    tasks = await tq.enqueue_many(
        [NewTask(type="noop", queue="mail"), NewTask(type="sleep", payload={"seconds": 0})]
    )
    await tq.cancel(tasks[0].id)
    events = await tail.poll()
    assert [(e.task_id, e.event_type, e.queue, e.type) for e in events] == [
        (tasks[0].id, "task_queued", "mail", "noop"),
        (tasks[1].id, "task_queued", "default", "sleep"),
        (tasks[0].id, "task_cancelled", "mail", "noop"),
    ]
    assert before.id not in {e.task_id for e in events}
    assert await tail.poll() == []
    assert tail.polls == 2


async def test_a_gap_holds_later_events_until_it_fills_or_times_out(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    clock = Clock()
    tail = EventTail(pool, await _last_id(pool), gap_timeout=2.0, clock=clock)
    task = await tq.enqueue("noop")
    async with pool.acquire() as slow:
        transaction = slow.transaction()
        await transaction.start()
        late_id = await insert_event(slow, task.id)  # takes an id, commits later
        after_id = await insert_event(pool, task.id)  # a later id, committed now
        assert after_id > late_id
        first = await tail.poll()
        assert [e.event_type for e in first] == ["task_queued"]  # the enqueue's, before the gap
        clock.now += 1.0
        assert await tail.poll() == []  # held: the gap is young
        await transaction.commit()
    filled = await tail.poll()
    assert [e.id for e in filled] == [late_id, after_id]

    # A gap that never fills (a rolled-back insert) is passed over after the
    # timeout; an event that commits after that still arrives, late.
    async with pool.acquire() as slow:
        rolled_back = slow.transaction()
        await rolled_back.start()
        await insert_event(slow, task.id)
        await rolled_back.rollback()
    async with pool.acquire() as slow:
        late = slow.transaction()
        await late.start()
        very_late_id = await insert_event(slow, task.id)
        last_id = await insert_event(pool, task.id)
        assert await tail.poll() == []
        clock.now += 2.5
        passed = await tail.poll()
        assert [e.id for e in passed] == [last_id]
        await late.commit()
    assert [e.id for e in await tail.poll()] == [very_late_id]
    assert await tail.poll() == []


async def _last_id(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT coalesce(max(id), 0) FROM taskqueue.task_events"))
