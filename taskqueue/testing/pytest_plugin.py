"""The pytest plugin (registered as ``taskqueue`` through the ``pytest11``
entry point): fixtures that give each test a migrated database of its own.

- ``taskqueue_server`` (session): DSN of a server tests may create databases
  on (see ``taskqueue.testing.database.server``).
- ``taskqueue_template`` (session): a migrated database to clone.
- ``taskqueue_database_url``: a fresh migrated database for this test,
  dropped after it; point the application's settings at it.
- ``taskqueue_sync``: a ``taskqueue.sync.TaskQueue`` on that database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskqueue.testing import database


@pytest.fixture(scope="session")
def taskqueue_server() -> Iterator[str]:
    with database.server() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def taskqueue_template(taskqueue_server: str) -> Iterator[str]:
    with database.migrated_template(taskqueue_server) as name:
        yield name


@pytest.fixture
def taskqueue_database_url(taskqueue_server: str, taskqueue_template: str) -> Iterator[str]:
    with database.fresh_database(taskqueue_server, taskqueue_template) as dsn:
        yield dsn


@pytest.fixture
def taskqueue_sync(taskqueue_database_url: str) -> Iterator[object]:
    from taskqueue.sync import TaskQueue

    with TaskQueue.connect(taskqueue_database_url) as tq:
        yield tq
