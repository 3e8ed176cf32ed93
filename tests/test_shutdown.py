"""Graceful shutdown of a real worker process on a real signal."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.helpers import all_in_status, event_types, status_of, wait_until


@asynccontextmanager
async def worker_process(
    database_url: str, log: Path, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real worker process; killed on the way out if a test left it running."""
    variables = {**os.environ, "DATABASE_URL": database_url, "TASKQUEUE_POLL_INTERVAL": "0.1"}
    variables.update({f"TASKQUEUE_{k.upper()}": v for k, v in env.items()})
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskqueue.cli",
            "worker",
            env=variables,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigterm_finishes_short_tasks_and_releases_long_ones(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    quick = await tq.enqueue_many(
        [NewTask(type="sleep", payload={"seconds": 0.5}) for _ in range(3)]
    )
    slow = await tq.enqueue_many([NewTask(type="sleep", payload={"seconds": 60}) for _ in range(2)])
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    async with worker_process(database_url, log, shutdown_timeout="2", concurrency="10") as proc:
        everything = [t.id for t in quick + slow]
        await wait_until(lambda: all_in_status(pool, everything, "running"))
        proc.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(proc.wait(), 30)
    assert returncode == 0, log.read_text()
    for task in quick:
        assert await event_types(pool, task.id) == [
            "task_queued",
            "task_started",
            "task_succeeded",
        ]
    for task in slow:
        released = await tq.get(task.id)
        assert (released.status, released.attempts, released.locked_by) == ("queued", 0, None)
        assert await event_types(pool, task.id) == [
            "task_queued",
            "task_started",
            "task_released",
        ]
    log.unlink()


async def test_sigint_stops_claiming_at_once_and_releases_waiting_tasks(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    held = await tq.enqueue_many([NewTask(type="sleep", payload={"seconds": 60}) for _ in range(3)])
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    async with worker_process(
        database_url, log, shutdown_timeout="0.5", concurrency="1", prefetch="5"
    ) as proc:
        ids = [t.id for t in held]

        # One runs, one waits in the worker's prefetch buffer (a worker that
        # has not timed a task yet prefetches as many as its concurrency).
        async def two_claimed() -> bool:
            statuses = sorted([await status_of(pool, i) for i in ids])
            return statuses == ["queued", "running", "running"]

        await wait_until(two_claimed)
        proc.send_signal(signal.SIGINT)
        late = await tq.enqueue("noop")  # arrives after the signal: must not be claimed
        returncode = await asyncio.wait_for(proc.wait(), 30)
    assert returncode == 0, log.read_text()
    assert await all_in_status(pool, ids, "queued")
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM taskqueue.tasks WHERE id = ANY($1) AND attempts = 0", ids
        )
        == 3
    )
    assert await event_types(pool, late.id) == ["task_queued"]
    log.unlink()
