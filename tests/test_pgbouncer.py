"""End to end through a real PgBouncer 1.18 in transaction mode: the REST API
and worker processes run every statement through it, LISTEN goes to the
direct URL, a fleet shares a small pool, and without a direct URL a worker
polls and still picks new work up within a second."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from taskqueue import db
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.api_helpers import api_process
from tests.helpers import all_in_status, run_audit, wait_until, worker_process
from tests.pgbouncer import Bouncer, running_pgbouncer

POOL_SIZE = 2
# What the API's and the workers' pools call themselves: a server connection
# PgBouncer lends takes the name of the client it serves. (The listeners and
# this test's own connections go to the server directly.)
POOLED = ("taskqueue-api", "taskqueue-worker")
FALLBACK_WARNING = "DATABASE_URL leads to a connection pooler"


@pytest.fixture
def bouncer(pg_server: str) -> Iterator[Bouncer]:
    with running_pgbouncer(pg_server, pool_size=POOL_SIZE) as running:
        yield running


@pytest.fixture
async def observer(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(
        database_url, server_settings={"application_name": "pgbouncer-test-observer"}
    )
    yield conn
    await conn.close()


async def backends(observer: asyncpg.Connection) -> dict[str, int]:
    """This test database's client backends, counted by application_name
    (a pooled server connection carries the name of the client it serves)."""
    rows = await observer.fetch(
        "SELECT application_name, count(*) AS n FROM pg_stat_activity"
        " WHERE datname = current_database() AND backend_type = 'client backend'"
        " GROUP BY application_name"
    )
    return {r["application_name"]: r["n"] for r in rows}


@asynccontextmanager
async def most_pooled(observer: asyncpg.Connection) -> AsyncIterator[list[int]]:
    """Samples the server connections that came through the pooler while the
    block runs; the list holds the largest count seen."""
    seen = [0]

    async def sample() -> None:
        while True:
            counts = await backends(observer)
            seen[0] = max(seen[0], sum(n for name, n in counts.items() if name in POOLED))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        yield seen
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)


async def stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 60)


async def test_rest_enqueue_and_a_worker_process_run_through_pgbouncer_with_a_direct_listener(
    database_url: str,
    bouncer: Bouncer,
    observer: asyncpg.Connection,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    pooled = bouncer.through(database_url)
    worker_log, api_log = tmp_path / "worker.log", tmp_path / "api.log"
    async with (
        worker_process(pooled, worker_log, direct_url=database_url) as worker,
        api_process(pooled, api_log) as (base, _api),
        httpx.AsyncClient(base_url=base) as client,
    ):
        await wait_until(lambda: _has(observer, "taskqueue-worker-listen"))
        async with most_pooled(observer) as seen:
            replies = await asyncio.gather(
                *(client.post("/api/tasks", json={"type": "noop"}) for _ in range(200))
            )
            assert {r.status_code for r in replies} == {201}
            ids = [r.json()["id"] for r in replies]
            await wait_until(lambda: all_in_status(pool, ids, "succeeded"), timeout=60)
        assert 0 < seen[0] <= POOL_SIZE
        # One more, with the worker idle: the NOTIFY wakes it through the direct listener.
        created = (await client.post("/api/tasks", json={"type": "noop"})).json()
        await wait_until(lambda: all_in_status(pool, [created["id"]], "succeeded"))
        task = (await client.get(f"/api/tasks/{created['id']}")).json()
        stats = await client.get("/api/stats")
        assert stats.status_code == 200
        assert stats.json()["succeeded_tasks"] == 201
        assert (await backends(observer)).get("taskqueue-worker-listen") == 1
        assert await stop(worker) == 0
    pickup = _seconds(task["started_at"]) - _seconds(task["created_at"])
    assert pickup < 0.5, pickup
    assert await run_audit(pool) == []
    for log in (worker_log, api_log):
        text = log.read_text()
        assert "prepared statement" not in text
        assert "Traceback" not in text
    assert FALLBACK_WARNING not in worker_log.read_text()


async def test_four_worker_processes_drain_on_two_server_connections(
    database_url: str,
    bouncer: Bouncer,
    observer: asyncpg.Connection,
    tq: TaskQueue,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    pooled = bouncer.through(database_url)
    logs = [tmp_path / f"worker-{i}.log" for i in range(4)]
    async with (
        worker_process(pooled, logs[0], direct_url=database_url) as w0,
        worker_process(pooled, logs[1], direct_url=database_url) as w1,
        worker_process(pooled, logs[2], direct_url=database_url) as w2,
        worker_process(pooled, logs[3], direct_url=database_url) as w3,
    ):
        await wait_until(lambda: _has(observer, "taskqueue-worker-listen", 4), timeout=30)
        async with most_pooled(observer) as seen:
            tasks = await tq.enqueue_many([NewTask(type="noop") for _ in range(2000)])
            ids = [t.id for t in tasks]
            await wait_until(lambda: all_in_status(pool, ids, "succeeded"), timeout=120)
        assert 0 < seen[0] <= POOL_SIZE
        workers = await pool.fetch(
            "SELECT DISTINCT worker_id FROM taskqueue.task_events WHERE event_type = 'task_started'"
        )
        assert len(workers) >= 2  # the work was shared, not done by one
        assert [await stop(w) for w in (w0, w1, w2, w3)] == [0, 0, 0, 0]
    # The audit's cursor runs through the pooler too (inside its transaction).
    pooled_pool = await db.create_pool(pooled, min_size=1, max_size=2)
    try:
        assert await run_audit(pooled_pool) == []
    finally:
        await pooled_pool.close()
    for log in logs:
        text = log.read_text()
        assert "prepared statement" not in text and "Traceback" not in text, text[-2000:]


async def test_without_a_direct_url_a_worker_polls_warns_once_and_picks_up_within_a_second(
    database_url: str,
    bouncer: Bouncer,
    observer: asyncpg.Connection,
    tq: TaskQueue,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    log = tmp_path / "worker.log"
    # The production poll interval, not the tests' quick one.
    async with worker_process(bouncer.through(database_url), log, poll_interval="1") as worker:
        await wait_until(lambda: _registered(pool))
        now = await pool.fetchval("SELECT now()")
        # Due a little later, one after the other: each waits for a poll, not a NOTIFY.
        tasks = await tq.enqueue_many(
            [NewTask(type="noop", run_at=now + timedelta(seconds=1 + 0.37 * i)) for i in range(6)]
        )
        ids = [t.id for t in tasks]
        await wait_until(lambda: all_in_status(pool, ids, "succeeded"), timeout=30)
        assert "taskqueue-worker-listen" not in await backends(observer)
        assert await stop(worker) == 0
    waits = await pool.fetch(
        "SELECT extract(epoch FROM started_at - run_at)::float8 AS wait FROM taskqueue.tasks"
    )
    assert all(0 <= r["wait"] < 1.0 for r in waits), [r["wait"] for r in waits]
    assert log.read_text().count(FALLBACK_WARNING) == 1
    assert await run_audit(pool) == []


async def _has(observer: asyncpg.Connection, name: str, count: int = 1) -> bool:
    return (await backends(observer)).get(name, 0) == count


async def _registered(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM taskqueue.workers"))


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


async def test_result_waits_through_pgbouncer_listen_directly_or_read_again_without_it(
    database_url: str,
    bouncer: Bouncer,
    observer: asyncpg.Connection,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    pooled = bouncer.through(database_url)
    for direct in (database_url, ""):
        log = tmp_path / f"api-{bool(direct)}.log"
        async with (
            api_process(pooled, log, direct_url=direct) as (base, _api),
            httpx.AsyncClient(base_url=base, timeout=30) as client,
        ):
            created = (await client.post("/api/tasks", json={"type": "noop"})).json()
            waiting = asyncio.create_task(
                client.get(f"/api/tasks/{created['id']}/result", params={"wait": "20"})
            )
            if direct:
                # The waiters' LISTEN goes to the server itself when it can:
                # there its NOTIFY arrives; through the pooler it would not.
                await wait_until(lambda: _has(observer, "taskqueue-api-results"))
            async with worker_process(pooled, tmp_path / "worker.log", direct_url=database_url):
                started = asyncio.get_running_loop().time()
                answer = await waiting
                waited = asyncio.get_running_loop().time() - started
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "succeeded"
            # Woken by the NOTIFY, or by a read every half second: never the 20 s.
            assert waited < 10, waited
