"""The workers' history sealer (taskqueue.worker.sealer): a tick every
TASKQUEUE_SEAL_INTERVAL seals what committed since the last, ticks again
(paced) while it is behind, and with several workers each event is still
sealed once. The tick's own rules are tests/test_history.py."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.worker.sealer import HistorySealer
from tests.helpers import all_in_status, run_audit, running_worker, wait_until, worker_process


async def _sealed_tasks(pool: asyncpg.Pool) -> set[uuid.UUID]:
    rows = await pool.fetch(
        "SELECT DISTINCT x.task FROM taskqueue.history_links l,"
        " taskqueue.history_entries(l.entries) x"
    )
    return {r["task"] for r in rows}


async def test_a_pass_ticks_until_it_has_caught_up(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    for _ in range(5):  # five transactions of 120 events each
        await tq.enqueue_many([NewTask(type="noop") for _ in range(120)])
    sealer = HistorySealer(pool, batch=100)
    assert await sealer.run_once() == 600
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.history_links") == 5
    assert await sealer.run_once() == 0
    assert sealer.readings()["sealed"] == 600
    assert await store.verify_history(pool) == []


async def test_a_worker_seals_what_it_runs_within_its_interval(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    tasks = await tq.enqueue_many([NewTask(type="noop") for _ in range(20)])
    ids = [t.id for t in tasks]
    async with running_worker(database_url, seal_interval=0.1):
        await wait_until(lambda: all_in_status(pool, ids, "succeeded"))

        async def all_sealed() -> bool:
            trail = await pool.fetchval(
                "SELECT count(*) FROM taskqueue.task_events WHERE task_id = ANY($1)", ids
            )
            sealed = await pool.fetchval(
                "SELECT count(*) FROM taskqueue.history_links l,"
                " taskqueue.history_entries(l.entries) x WHERE x.task = ANY($1)",
                ids,
            )
            return bool(trail == sealed == 3 * len(ids))

        await wait_until(all_sealed, timeout=10)
    assert await store.verify_history(pool) == []
    assert await run_audit(pool) == []


async def test_workers_side_by_side_seal_each_event_once(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    async with (
        worker_process(database_url, log, SEAL_INTERVAL="0.05"),
        worker_process(database_url, log, SEAL_INTERVAL="0.05"),
    ):
        ids: list[uuid.UUID] = []
        for _ in range(20):
            ids += [t.id for t in await tq.enqueue_many([NewTask(type="noop") for _ in range(5)])]
            await asyncio.sleep(0.01)  # spread over several ticks
        await wait_until(lambda: all_in_status(pool, ids, "succeeded"), timeout=30)
        await wait_until(lambda: _has(pool, ids), timeout=10)
    events = await pool.fetchval("SELECT count(*) FROM taskqueue.task_events")
    entries = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.history_links l, taskqueue.history_entries(l.entries) x"
    )
    distinct = await pool.fetchval(
        "SELECT count(DISTINCT x.event) FROM taskqueue.history_links l,"
        " taskqueue.history_entries(l.entries) x"
    )
    assert events == entries == distinct
    assert await store.verify_history(pool) == []
    assert await run_audit(pool) == []


async def _has(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> bool:
    events = await pool.fetchval("SELECT count(*) FROM taskqueue.task_events")
    entries = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.history_links l, taskqueue.history_entries(l.entries) x"
    )
    return bool(set(ids) <= await _sealed_tasks(pool) and events == entries)
