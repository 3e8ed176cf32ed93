"""The LISTEN connection: named in pg_stat_activity, wakes the dispatcher
for its own queues only, comes back after the connection is killed, and
tells it when its queues' settings or a tenant's rate limit change."""

from __future__ import annotations

import asyncio

import asyncpg

from taskqueue.client import TaskQueue
from taskqueue.worker.listener import APPLICATION_NAME, Listener
from tests.helpers import wait_until


async def test_notifies_for_its_queues_wake_it_and_it_listens_again_after_a_kill(
    pool: asyncpg.Pool, database_url: str
) -> None:
    wakeups: list[int] = []
    listener = Listener(database_url, ("mail", "default"), lambda: wakeups.append(1))
    running = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        named = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            " AND datname = current_database()",
            APPLICATION_NAME,
        )
        assert named == 1
        after_connect = len(wakeups)  # a connect wakes once: tasks may have arrived meanwhile
        await pool.execute("SELECT pg_notify('taskqueue', 'reports')")
        await pool.execute("SELECT pg_notify('taskqueue', 'reports,mail')")
        await wait_until(lambda: _at_least(wakeups, after_connect + 1))
        await pool.execute("SELECT pg_notify('taskqueue', 'reports')")
        await pool.execute("SELECT pg_sleep(0.2)")
        assert len(wakeups) == after_connect + 1

        await pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            APPLICATION_NAME,
        )
        await wait_until(lambda: _reconnected(listener, pool))
        before = len(wakeups)
        await pool.execute("SELECT pg_notify('taskqueue', 'default')")
        await wait_until(lambda: _at_least(wakeups, before + 1))
    finally:
        listener.stop()
        await asyncio.wait_for(running, 10)


async def test_settings_of_its_queues_and_any_tenants_rate_limit_make_it_look_again(
    tq: TaskQueue, database_url: str
) -> None:
    changes: list[int] = []
    listener = Listener(
        database_url, ("mail",), lambda: None, settings_changed=lambda: changes.append(1)
    )
    running = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        base = len(changes)  # a connect counts as a change: it may have missed one
        await tq.set_limits("reports", concurrency=2)  # not its queue: nothing
        await tq.set_limits("mail", concurrency=2)
        await wait_until(lambda: _at_least(changes, base + 1))
        # A tenant's tasks may be in any queue: every worker looks again.
        await tq.tenants.set_limits("acme", rate=(5, 1.0))
        await wait_until(lambda: _at_least(changes, base + 2))
        await tq.tenants.set_limits("acme", rate=None)
        await wait_until(lambda: _at_least(changes, base + 3))
        assert len(changes) == base + 3
    finally:
        listener.stop()
        await asyncio.wait_for(running, 10)


async def _at_least(wakeups: list[int], count: int) -> bool:
    return len(wakeups) >= count


async def _reconnected(listener: Listener, pool: asyncpg.Pool) -> bool:
    listening = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        " AND datname = current_database()",
        APPLICATION_NAME,
    )
    return listener.connected.is_set() and listening == 1
