"""The claim loop: it claims what the ledger has room for, of its own types,
and a claim that cannot finish gives up before a third of the lease."""

from __future__ import annotations

import time
from typing import cast

import asyncpg
import pytest

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.worker.dispatcher import POLL_ONLY_CAP, POLL_ONLY_FLOOR, Dispatcher
from taskqueue.worker.inflight import InFlight


def dispatcher(pool: asyncpg.Pool, inflight: InFlight, lease: float = 30) -> Dispatcher:
    return Dispatcher(
        pool,
        inflight,
        queues=["default"],
        types=["noop", "sleep"],
        worker_id="w",
        lease_seconds=lease,
        poll_interval=1,
    )


async def test_it_claims_only_what_the_ledger_has_room_for_and_only_its_types(
    pool: asyncpg.Pool,
) -> None:
    producer = TaskQueue(pool, registry=None)
    await producer.enqueue_many([NewTask(type="noop") for _ in range(30)])
    await producer.enqueue_many([NewTask(type="mystery", priority=100) for _ in range(5)])
    inflight = InFlight(concurrency=4, max_prefetch=6, lease_seconds=30)
    claim = dispatcher(pool, inflight)
    started = time.monotonic()
    assert await claim.run_once() == 8  # 4 to run + 4 prefetched (no run times yet)
    assert await claim.run_once() == 0  # full: nothing claimed, no statement sent
    assert claim.claims == 1
    held = inflight.leased()
    assert {a.task.type for a in held} == {"noop"}
    assert all(started + 27 <= a.deadline <= time.monotonic() + 27 for a in held)


async def test_a_claim_that_cannot_finish_gives_up_within_a_quarter_lease(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue("noop")
    inflight = InFlight(concurrency=4, max_prefetch=0, lease_seconds=2)
    claim = dispatcher(pool, inflight, lease=2)
    async with pool.acquire() as blocker, blocker.transaction():
        await blocker.execute("LOCK TABLE taskqueue.tasks IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await claim.run_once()
        took = time.monotonic() - started
    assert took < 2 / 3, took
    assert inflight.held == 0


def test_without_notifies_it_polls_soon_after_work_and_backs_off_to_half_a_second() -> None:
    inflight = InFlight(concurrency=4, max_prefetch=0, lease_seconds=30)
    polling = Dispatcher(
        cast(asyncpg.Pool, None),
        inflight,
        queues=["default"],
        types=["noop"],
        worker_id="w",
        lease_seconds=30,
        poll_interval=1,
        listening=False,
    )
    idle = [polling._idle_delay(0) for _ in range(6)]
    assert idle == [POLL_ONLY_CAP] * 6  # idle from the start: the cap, never the interval
    assert polling._idle_delay(3) == POLL_ONLY_FLOOR  # work found: look again soon
    assert [polling._idle_delay(0) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    listening = dispatcher(cast(asyncpg.Pool, None), inflight)
    assert {listening._idle_delay(n) for n in (0, 3)} == {1}  # NOTIFYs wake it; the interval
