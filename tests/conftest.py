"""Real PostgreSQL for every test: one migrated template per session, a fresh
database cloned from it per test. The databases come from the fixtures of
taskqueue's own pytest plugin (taskqueue.testing.pytest_plugin, the same
applications use): TASKQUEUE_TEST_DATABASE_URL, else a testcontainers
PostgreSQL when a Docker engine answers, else an embedded server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from taskqueue import db
from taskqueue.client import TaskQueue
from taskqueue.testing import database
from taskqueue.testing.database import with_database

__all__ = ["with_database"]  # tests import it from here


@pytest.fixture(scope="session")
def pg_server(taskqueue_server: str) -> str:
    """DSN of a server where the tests may create and drop databases."""
    return taskqueue_server


@pytest.fixture(scope="session")
def template_database(taskqueue_template: str) -> str:
    return taskqueue_template


@pytest.fixture
def database_url(taskqueue_database_url: str) -> str:
    """A freshly migrated database of this test's own."""
    return taskqueue_database_url


@pytest.fixture
def empty_database_url(pg_server: str) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    name = database.create_database(pg_server, "taskqueue_empty")
    yield with_database(pg_server, name)
    database.drop_database(pg_server, name)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
async def tq(pool: asyncpg.Pool) -> TaskQueue:
    return TaskQueue(pool)
