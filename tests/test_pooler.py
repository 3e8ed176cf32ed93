"""taskqueue.pooler against a real PgBouncer 1.18 in transaction mode: it is
detected, asyncpg's named statements are turned off behind it (and the load
that breaks them runs clean), and the configured modes are obeyed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import asyncpg
import pytest

from taskqueue import db
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.pooler import STATEMENT_CACHE_SIZE, Pooler, is_pooled
from tests.pgbouncer import Bouncer, running_pgbouncer


@pytest.fixture
def bouncer(pg_server: str) -> Iterator[Bouncer]:
    with running_pgbouncer(pg_server, pool_size=2) as running:
        yield running


def cache_size(conn: object) -> int:
    # asyncpg offers no public reading of the setting a connection was made with.
    return int(cast(Any, conn)._config.statement_cache_size)


async def mixed_load(pool: asyncpg.Pool, rounds: int) -> list[BaseException]:
    """Many clients at once, each sending several distinct statements."""
    tq = TaskQueue(pool)

    async def one(i: int) -> None:
        (created,) = await tq.enqueue_many([NewTask(type="noop", payload={"i": i})])
        await tq.get(created.id)
        await tq.stats()

    results = await asyncio.gather(*(one(i) for i in range(rounds)), return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


async def test_a_direct_connection_is_seen_as_direct_and_keeps_its_statement_cache(
    database_url: str,
) -> None:
    pooler = Pooler()
    pool = await db.create_pool(database_url, min_size=1, max_size=2, pooler=pooler)
    try:
        assert pooler.pooled is False
        assert pooler.allows_listen
        async with pool.acquire() as conn:
            assert cache_size(conn) == STATEMENT_CACHE_SIZE
    finally:
        await pool.close()


async def test_pgbouncer_is_detected_and_twenty_clients_on_two_server_connections_run_clean(
    database_url: str, bouncer: Bouncer
) -> None:
    pooler = Pooler()
    pool = await db.create_pool(
        bouncer.through(database_url), min_size=4, max_size=20, pooler=pooler
    )
    try:
        assert pooler.pooled is True
        assert not pooler.allows_listen
        async with pool.acquire() as conn:
            assert cache_size(conn) == 0
        assert await mixed_load(pool, 400) == []
    finally:
        await pool.close()


async def test_named_statements_through_pgbouncer_collide_which_is_why_the_cache_goes(
    database_url: str, bouncer: Bouncer
) -> None:
    # The control: told there is no pooler, asyncpg names its statements and
    # PgBouncer 1.18 hands them to clients that never prepared them.
    pool = await db.create_pool(
        bouncer.through(database_url), min_size=4, max_size=20, pooler=Pooler("none")
    )
    try:
        errors = await mixed_load(pool, 400)
    finally:
        await pool.close()
    assert errors, "named prepared statements survived transaction pooling"
    assert all("prepared statement" in str(e) for e in errors), errors[:3]


@pytest.mark.parametrize(
    ("mode", "pooled", "cache"),
    [
        ("none", False, STATEMENT_CACHE_SIZE),
        ("pgbouncer", True, 0),
        ("pgbouncer-prepared", True, STATEMENT_CACHE_SIZE),
    ],
)
async def test_a_configured_mode_is_obeyed_without_looking(
    database_url: str, mode: str, pooled: bool, cache: int
) -> None:
    pooler = Pooler(mode)  # type: ignore[arg-type]
    assert pooler.pooled is pooled  # known before any connection
    assert not pooler.allows_listen if pooled else pooler.allows_listen
    pool = await db.create_pool(database_url, min_size=1, max_size=1, pooler=pooler)
    try:
        async with pool.acquire() as conn:
            assert cache_size(conn) == cache
    finally:
        await pool.close()


async def test_listen_then_pg_listening_channels_cannot_tell_pgbouncer_but_the_pid_can(
    database_url: str, bouncer: Bouncer
) -> None:
    # Why detection compares pids: an idle PgBouncer lends the same server
    # connection again, so the LISTEN seems to have held.
    conn = await asyncpg.connect(bouncer.through(database_url), statement_cache_size=0)
    try:
        await conn.execute("LISTEN taskqueue_probe")
        channels = await conn.fetchval("SELECT array_agg(c) FROM pg_listening_channels() c")
        assert channels == ["taskqueue_probe"]
        assert await is_pooled(conn)
        await conn.execute("UNLISTEN *")
    finally:
        await conn.close()


async def test_pgbouncer_refuses_startup_parameters_beyond_the_few_it_tracks(
    database_url: str, bouncer: Bouncer
) -> None:
    # Why pools send application_name alone at startup (no other
    # server_settings): anything else needs ignore_startup_parameters.
    with pytest.raises(asyncpg.PostgresError, match="unsupported startup parameter"):
        await asyncpg.connect(
            bouncer.through(database_url), server_settings={"search_path": "taskqueue"}
        )
    conn = await asyncpg.connect(
        bouncer.through(database_url), server_settings={"application_name": "taskqueue-x"}
    )
    try:
        assert await conn.fetchval("SHOW application_name") == "taskqueue-x"
    finally:
        await conn.close()


def test_the_sync_producer_prepares_nothing_behind_pgbouncer(
    database_url: str, bouncer: Bouncer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from taskqueue.sync import TaskQueue as SyncTaskQueue

    # Eight threads on two server connections, each statement sent well past
    # psycopg's fifth run, which is where it would start naming them.
    with SyncTaskQueue.connect(bouncer.through(database_url), min_size=4, max_size=8) as tq:
        with tq.pool.connection() as conn:
            assert conn.prepare_threshold is None

        def one(i: int) -> None:
            for j in range(10):
                task = tq.enqueue("noop", {"i": i, "j": j})
                assert tq.get(task.id).payload == {"i": i, "j": j}

        with ThreadPoolExecutor(8) as threads:
            list(threads.map(one, range(8)))
    with (
        SyncTaskQueue.connect(database_url, min_size=1, max_size=1) as direct,
        direct.pool.connection() as conn,
    ):
        assert conn.prepare_threshold == 5  # psycopg's default, kept on a direct server
