"""Real worker processes and real signals: graceful shutdown, a network
partition, SIGSTOP, kill -9, and starting against a database that is not
there (yet, or ever)."""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.registry import load_registry
from tests.api_helpers import free_port
from tests.conftest import with_database
from tests.helpers import (
    HoldingProxy,
    all_in_status,
    event_types,
    run_audit,
    status_of,
    wait_until,
    worker_process,
)
from tests.logged_handlers import overlaps, read_run_log


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


# -- leases under faults: the handlers' run log is the witness ----------------

LEASE = 3.0
MARGIN = LEASE * 0.1


@pytest.fixture
def logged(pool: asyncpg.Pool) -> TaskQueue:
    """A producer that knows the logged_sleep type the worker processes run."""
    return TaskQueue(pool, load_registry(["tests.logged_handlers"]))


def run_log() -> Path:
    return Path(tempfile.mkstemp(suffix=".runlog")[1])


async def held_by(pool: asyncpg.Pool, worker_id: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM taskqueue.tasks WHERE status = 'running' AND locked_by = $1",
            worker_id,
        )
    )


async def all_succeeded(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> bool:
    return await all_in_status(pool, ids, "succeeded")


async def test_a_partitioned_worker_never_runs_a_task_past_its_lease(
    logged: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    tasks = await logged.enqueue_many(
        [NewTask(type="logged_sleep", payload={"seconds": 2.0}) for _ in range(12)]
    )
    ids = [t.id for t in tasks]
    runs, log = run_log(), Path(tempfile.mkstemp(suffix=".log")[1])
    proxy = await HoldingProxy.in_front_of(database_url)
    settings = {
        "handlers": "tests.logged_handlers",
        "lease_seconds": str(LEASE),
        "test_run_log": str(runs),
    }
    try:
        async with worker_process(
            proxy.dsn(database_url), log, **settings, concurrency="4", worker_id="a"
        ) as a:
            # a runs 4 and holds 4 more, prefetched; its first 4 end during the
            # partition, so its executors reach for the prefetched ones then.
            await wait_until(lambda: _holds(pool, "a", 8))
            partitioned_at = time.time()
            proxy.hold()
            async with worker_process(
                database_url, log, **settings, concurrency="12", worker_id="b"
            ) as b:
                # a's leases run out; b's rescuer takes the tasks back and b runs them.
                await wait_until(lambda: _rescued_from(pool, "a", 8), timeout=30)
                await asyncio.sleep(LEASE)  # the partition lasts well past the lease
                proxy.resume()
                healed_at = time.time()
                await wait_until(lambda: all_succeeded(pool, ids), timeout=60)
                for proc in (a, b):
                    proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(b.wait(), 30) == 0
            assert await asyncio.wait_for(a.wait(), 30) == 0, log.read_text()
    finally:
        await proxy.close()
    executions = read_run_log(str(runs))
    # a's leases were last confirmed before the partition began, so its local
    # deadlines fell at partitioned_at + LEASE - MARGIN at the latest.
    deadline = partitioned_at + LEASE - MARGIN
    mine = [e for e in executions if e.worker_id == "a"]
    late_starts = [e for e in mine if e.started > deadline]
    overran = [e for e in mine if e.ended is None or e.ended > deadline + MARGIN]
    overlapping = overlaps(executions)
    print(  # the figures for the closing note (pytest -s)
        f"\npartition of {healed_at - partitioned_at:.1f}s (lease {LEASE:g}s):"
        f" {len(executions)} executions, {len(mine)} by the cut-off worker;"
        f" {len(late_starts)} started after its lease deadline,"
        f" {len(overran)} ran past it, {len(overlapping)} overlaps"
        f" (longest {max((o for _, o in overlapping), default=0):.3f}s)"
    )
    assert len(mine) > 4  # it did reach for prefetched tasks during the partition
    assert late_starts == []
    assert overran == []
    assert all(seconds <= MARGIN for _, seconds in overlapping), overlapping
    assert await run_audit(pool) == []
    runs.unlink()
    log.unlink()


async def test_a_frozen_worker_starts_none_of_its_prefetched_tasks_after_it_thaws(
    logged: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    tasks = await logged.enqueue_many(
        [NewTask(type="logged_sleep", payload={"seconds": 1.0}) for _ in range(10)]
    )
    ids = [t.id for t in tasks]
    runs, log = run_log(), Path(tempfile.mkstemp(suffix=".log")[1])
    settings = {
        "handlers": "tests.logged_handlers",
        "lease_seconds": "2",
        "concurrency": "2",
        "test_run_log": str(runs),
    }
    async with worker_process(database_url, log, **settings, worker_id="a") as a:
        # 2 running, 2 prefetched; frozen before the running ones end, so on
        # SIGCONT their sleeps are over and the executors reach for the others.
        await wait_until(lambda: _holds(pool, "a", 4))
        a.send_signal(signal.SIGSTOP)
        frozen_with = await _held_attempts(pool, "a")
        async with worker_process(database_url, log, **settings, worker_id="b") as b:
            await wait_until(lambda: _rescued_from(pool, "a", 4), timeout=30)
            a.send_signal(signal.SIGCONT)
            thawed_at = time.time()
            await wait_until(lambda: all_succeeded(pool, ids), timeout=60)
            for proc in (a, b):
                proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(b.wait(), 30) == 0
        assert await asyncio.wait_for(a.wait(), 30) == 0, log.read_text()
    executions = read_run_log(str(runs))
    # The attempts a held when it froze: none of them starts after SIGCONT.
    # (Once thawed, a may claim tasks again, as new attempts.)
    after_thaw = [
        e
        for e in executions
        if (e.task_id, e.attempt) in frozen_with and e.worker_id == "a" and e.started > thawed_at
    ]
    print(
        f"\nSIGSTOP: a started {len(after_thaw)} of its {len(frozen_with)} attempts after SIGCONT"
    )
    assert len(frozen_with) == 4
    assert after_thaw == []
    assert await run_audit(pool) == []
    runs.unlink()
    log.unlink()


async def test_kill_9_of_one_of_three_workers_mid_drain_loses_and_doubles_nothing(
    logged: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    tasks = await logged.enqueue_many(
        [NewTask(type="logged_sleep", payload={"seconds": 0.05}) for _ in range(300)]
    )
    ids = [t.id for t in tasks]
    runs, log = run_log(), Path(tempfile.mkstemp(suffix=".log")[1])
    settings = {
        "handlers": "tests.logged_handlers",
        "lease_seconds": "2",
        "concurrency": "5",
        "test_run_log": str(runs),
    }
    async with (
        worker_process(database_url, log, **settings, worker_id="w1") as w1,
        worker_process(database_url, log, **settings, worker_id="w2") as w2,
        worker_process(database_url, log, **settings, worker_id="w3") as w3,
    ):
        await wait_until(lambda: _holds(pool, "w2", 1))
        w2.kill()
        assert await w2.wait() == -signal.SIGKILL
        await wait_until(lambda: all_succeeded(pool, ids), timeout=90)
        for proc in (w1, w3):
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
    counts = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE event_type = 'task_succeeded') AS succeeded,"
        " count(DISTINCT task_id) FILTER (WHERE event_type = 'task_succeeded') AS distinct_ids,"
        " count(*) FILTER (WHERE event_type = 'task_lease_expired') AS rescued,"
        " count(*) FILTER (WHERE event_type = 'task_started') AS started"
        " FROM taskqueue.task_events"
    )
    assert counts is not None
    print(
        f"\nkill -9: {counts['started']} starts for 300 tasks, {counts['rescued']} rescued"
        f" from the killed worker"
    )
    assert (counts["succeeded"], counts["distinct_ids"]) == (300, 300)
    assert counts["rescued"] >= 1
    assert counts["started"] == 300 + counts["rescued"]  # every re-run is a rescued one
    finished = [e for e in read_run_log(str(runs)) if e.worker_id != "w2"]
    assert all(seconds <= 0 for _, seconds in overlaps(finished))
    assert await run_audit(pool) == []
    runs.unlink()
    log.unlink()


async def _holds(pool: asyncpg.Pool, worker_id: str, count: int) -> bool:
    return await held_by(pool, worker_id) >= count


async def _held_attempts(pool: asyncpg.Pool, worker_id: str) -> set[tuple[uuid.UUID, int]]:
    rows = await pool.fetch(
        "SELECT id, attempts FROM taskqueue.tasks WHERE status = 'running' AND locked_by = $1",
        worker_id,
    )
    return {(r["id"], r["attempts"]) for r in rows}


async def _rescued_from(pool: asyncpg.Pool, worker_id: str, count: int) -> bool:
    rescued = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.task_events"
        " WHERE event_type = 'task_lease_expired' AND worker_id = $1",
        worker_id,
    )
    return bool(rescued >= count)


# -- starting and stopping --------------------------------------------------------


async def test_a_worker_waiting_for_the_database_exits_0_at_once_on_sigterm() -> None:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    closed = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    async with worker_process(closed, log) as proc:
        await wait_until(lambda: _logged(log, "database unreachable"))
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(proc.wait(), 10)
        took = time.monotonic() - signalled
    assert returncode == 0, log.read_text()
    assert took < 2, took
    assert "Traceback" not in log.read_text()
    log.unlink()


async def test_a_worker_that_can_never_use_its_database_exits_with_one_clear_line(
    pg_server: str, empty_database_url: str
) -> None:
    for dsn, says in (
        (with_database(pg_server, "taskqueue_no_such_database"), "does not exist"),
        (empty_database_url, "has no taskqueue schema: run `taskqueue migrate` first"),
        (f"{pg_server}?sslmode=sometimes", "invalid connection setting"),
    ):
        log = Path(tempfile.mkstemp(suffix=".log")[1])
        async with worker_process(dsn, log) as proc:
            returncode = await asyncio.wait_for(proc.wait(), 20)
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        assert returncode not in (0, None), lines
        assert len(lines) == 1, lines
        assert lines[0].startswith("taskqueue: error: cannot use the database:"), lines
        assert says in lines[0], lines
        log.unlink()


async def test_a_second_sigint_interrupts_running_tasks_at_once(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    task = await tq.enqueue("sleep", {"seconds": 120})
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    async with worker_process(database_url, log, shutdown_timeout="60") as proc:
        await wait_until(lambda: all_in_status(pool, [task.id], "running"))
        proc.send_signal(signal.SIGINT)
        await wait_until(lambda: _logged(log, "waiting up to 60s for 1 running task(s)"))
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        returncode = await asyncio.wait_for(proc.wait(), 20)
        took = time.monotonic() - signalled
    assert returncode == 0, log.read_text()
    assert took < 3, took
    released = await tq.get(task.id)
    assert (released.status, released.attempts) == ("queued", 0)
    assert await event_types(pool, task.id) == ["task_queued", "task_started", "task_released"]
    log.unlink()


async def _logged(log: Path, text: str) -> bool:
    return text in log.read_text()
