"""`taskqueue migrate | psql | embedded` (taskqueue/cli/database.py), as real
processes: confirmation before destroying data, a `make psql` that stops only
the server it started, and commands that find `make run`'s server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from taskqueue.embedded import EmbeddedPostgres
from tests.cli_helpers import data_dir, run
from tests.test_migrations import TABLES


async def count_tables(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                # Tables and views, not the history's daily partitions.
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'taskqueue' AND c.relkind IN ('r', 'p', 'v')"
                " AND NOT c.relispartition"
            )
        )
    finally:
        await conn.close()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    with data_dir(tmp_path) as folder:
        yield folder


async def test_rolling_back_asks_for_yes(database_url: str) -> None:
    refused = run("--database-url", database_url, "migrate", "--rollback", "0")
    assert refused.returncode == 2
    assert "add --yes" in refused.stderr and "drop" in refused.stderr
    assert await count_tables(database_url) == len(TABLES)
    done = run("--database-url", database_url, "migrate", "--rollback", "0", "--yes")
    assert done.returncode == 0, done.stderr
    assert await count_tables(database_url) == 0


def test_psql_stops_the_server_it_started(state: Path) -> None:
    env = {"TASKQUEUE_DATA_DIR": str(state)}
    result = run("psql", "-A", "-t", "-c", "SELECT 'hello'", env=env)
    assert (result.returncode, result.stdout.strip()) == (0, "hello"), result.stderr
    assert EmbeddedPostgres(state / "pgdata").running_port() is None


async def test_commands_find_the_running_embedded_server_without_database_url(
    state: Path,
) -> None:
    env = {"TASKQUEUE_DATA_DIR": str(state), "DATABASE_URL": "", "TASKQUEUE_DATABASE_URL": ""}
    without = run("queues", env=env)
    assert without.returncode == 2  # nothing running: the usual clear error
    assert "DATABASE_URL" in without.stderr
    assert not (state / "pgdata").exists()  # and nothing was started
    assert run("embedded", "start", env=env).returncode == 0
    try:
        assert run("migrate", env=env).returncode == 0
        listed = run("queues", env=env)
        assert (listed.returncode, listed.stdout.strip()) == (0, "no queues"), listed.stderr
    finally:
        assert run("embedded", "stop", env=env).returncode == 0
