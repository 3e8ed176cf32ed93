"""The worker registry: workers register, heartbeat with what they hold, say
when they stop; a killed one shows as lost; old rows are pruned."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import asyncpg

from taskqueue import __version__
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.helpers import all_in_status, running_worker, wait_until, worker_process


async def state_of(tq: TaskQueue, worker_id: str) -> str | None:
    return next((w.state for w in await tq.workers() if w.id == worker_id), None)


async def test_a_worker_registers_heartbeats_with_its_load_and_says_when_it_stopped(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    slow = await tq.enqueue_many(
        [NewTask(type="sleep", payload={"seconds": 1.0}) for _ in range(3)]
    )
    async with running_worker(
        database_url, worker_id="w-beat", heartbeat_seconds=0.1, concurrency=7
    ) as worker:
        await wait_until(lambda: all_in_status(pool, [t.id for t in slow], "running"))

        async def reported_load() -> bool:
            (me,) = [w for w in await tq.workers() if w.id == "w-beat"]
            return me.in_flight == 3

        await wait_until(reported_load)
        (me,) = await tq.workers()
        assert (me.state, me.concurrency, me.version, me.queues) == (
            "running",
            7,
            __version__,
            ["default"],
        )
        assert set(worker.types) == set(me.types) >= {"noop", "sleep"}
        assert me.last_heartbeat_at > me.started_at
        assert (await tq.queue("default")).workers == 1
    (me,) = await tq.workers()
    assert (me.state, me.in_flight) == ("stopped", 0)
    assert me.stopped_at is not None
    assert (await tq.queue("default")).workers == 0


async def test_a_killed_worker_shows_as_lost_and_old_rows_are_pruned(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    async with worker_process(
        database_url, log, worker_id="doomed", heartbeat_seconds="0.2"
    ) as proc:
        await wait_until(lambda: _is(tq, "doomed", "running"))
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    await wait_until(lambda: _is(tq, "doomed", "lost"))  # three missed heartbeats
    # A day later another worker's heartbeat prunes the row.
    await pool.execute(
        "UPDATE taskqueue.workers SET last_heartbeat_at = now() - interval '25 hours'"
        " WHERE id = 'doomed'"
    )
    async with running_worker(database_url, worker_id="survivor", heartbeat_seconds=0.05):
        await wait_until(lambda: _gone(tq, "doomed"))
    assert [w.id for w in await tq.workers()] == ["survivor"]
    log.unlink()


async def _is(tq: TaskQueue, worker_id: str, state: str) -> bool:
    return await state_of(tq, worker_id) == state


async def _gone(tq: TaskQueue, worker_id: str) -> bool:
    return await state_of(tq, worker_id) is None
