"""Enqueue inside the caller's transaction, through every kind of connection
taskqueue.connections takes: committed, the task, its event and the workers'
wake-up are there; rolled back, none of them is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from taskqueue.client import TaskQueue as AsyncTaskQueue
from taskqueue.errors import InvalidArgument
from taskqueue.models import NewTask
from taskqueue.store.bulk_copy import COPY_MIN_ROWS
from taskqueue.sync import TaskQueue

ROOT = Path(__file__).resolve().parent.parent


def _url(dsn: str, driver: str) -> str:
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1)


def rows_for(dsn: str, task_id: uuid.UUID) -> tuple[int, int]:
    """(tasks, events) stored for ``task_id``, seen from outside any transaction."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        tasks = conn.execute("SELECT count(*) FROM taskqueue.tasks WHERE id = %s", [task_id])
        events = conn.execute(
            "SELECT count(*) FROM taskqueue.task_events WHERE task_id = %s", [task_id]
        )
        return int(tasks.fetchone()[0]), int(events.fetchone()[0])  # type: ignore[index]


@pytest.fixture
def listener(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection that listens on the workers' wake-up channel."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("LISTEN taskqueue")
        yield conn


def wake_ups(listener: psycopg.Connection[Any], wait: float) -> list[str]:
    return [n.payload for n in listener.notifies(timeout=wait, stop_after=1)]


def test_psycopg_connection_commits_the_task_its_event_and_the_wake_up_together(
    taskqueue_sync: TaskQueue, database_url: str, listener: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE orders (id int)")
        conn.execute("INSERT INTO orders VALUES (1)")
        task = taskqueue_sync.enqueue("noop", {"order": 1}, queue="mail", connection=conn)
        assert rows_for(database_url, task.id) == (0, 0)  # not visible before commit
        assert wake_ups(listener, 0.2) == []  # nor is the NOTIFY sent
        conn.commit()
    assert rows_for(database_url, task.id) == (1, 1)
    assert wake_ups(listener, 10) == ["mail"]
    assert taskqueue_sync.get(task.id).payload == {"order": 1}


def test_psycopg_connection_rolled_back_leaves_no_task_no_event_no_wake_up(
    taskqueue_sync: TaskQueue, database_url: str, listener: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(database_url) as conn:
        tasks = taskqueue_sync.enqueue_many(
            [NewTask(type="noop", payload={"i": i}) for i in range(3)], connection=conn
        )
        conn.rollback()
    assert [rows_for(database_url, t.id) for t in tasks] == [(0, 0)] * 3
    assert wake_ups(listener, 0.3) == []


def test_a_batch_large_enough_for_copy_goes_as_one_statement_through_psycopg(
    taskqueue_sync: TaskQueue, database_url: str, listener: psycopg.Connection[Any]
) -> None:
    # On asyncpg a batch this size goes by COPY; psycopg connections have no
    # COPY of asyncpg's kind, so the same batch takes the one-statement path.
    n = COPY_MIN_ROWS + 50
    with psycopg.connect(database_url) as conn:
        tasks = taskqueue_sync.enqueue_many(
            [NewTask(type="noop", payload={"i": i}) for i in range(n)], connection=conn
        )
        conn.commit()
    assert len({t.id for t in tasks}) == n
    assert [rows_for(database_url, t.id) for t in tasks[:: n // 5]] == [(1, 1)] * 5
    assert wake_ups(listener, 10) == ["default"]
    many = taskqueue_sync.enqueue_many([NewTask(type="noop") for _ in range(n)])
    assert rows_for(database_url, many[-1].id) == (1, 1)


def test_sqlalchemy_connection_and_session_join_their_transaction(
    taskqueue_sync: TaskQueue, database_url: str
) -> None:
    engine = create_engine(_url(database_url, "psycopg"))
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            committed = taskqueue_sync.enqueue("noop", {"via": "connection"}, connection=conn)
        with engine.connect() as conn:
            rolled_back = taskqueue_sync.enqueue("noop", connection=conn)
            conn.rollback()
        with Session(engine) as session:
            in_session = taskqueue_sync.enqueue("noop", {"via": "session"}, connection=session)
            session.commit()
        with Session(engine) as session:
            discarded = taskqueue_sync.enqueue("noop", connection=session)
            session.rollback()
    finally:
        engine.dispose()
    assert rows_for(database_url, committed.id) == (1, 1)
    assert rows_for(database_url, in_session.id) == (1, 1)
    assert rows_for(database_url, rolled_back.id) == (0, 0)
    assert rows_for(database_url, discarded.id) == (0, 0)


async def test_psycopg_async_connection_joins_its_transaction(
    tq: AsyncTaskQueue, database_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        committed = await tq.enqueue("noop", {"async": True}, connection=conn)
        await conn.commit()
        rolled_back = await tq.enqueue("noop", connection=conn)
        await conn.rollback()
    assert rows_for(database_url, committed.id) == (1, 1)
    assert rows_for(database_url, rolled_back.id) == (0, 0)
    assert (await tq.get(committed.id)).payload == {"async": True}


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_sqlalchemy_async_connection_and_session_join_their_transaction(
    tq: AsyncTaskQueue, database_url: str, driver: str
) -> None:
    engine = create_async_engine(_url(database_url, driver))
    try:
        async with engine.begin() as conn:
            committed = await tq.enqueue("noop", {"driver": driver}, connection=conn)
        async with engine.connect() as conn:
            rolled_back = await tq.enqueue("noop", connection=conn)
            await conn.rollback()
        async with AsyncSession(engine) as session:
            many = await tq.enqueue_many(
                [NewTask(type="noop", payload={"n": n}) for n in range(2)], connection=session
            )
            await session.commit()
        async with AsyncSession(engine) as session:
            discarded = await tq.enqueue("noop", connection=session)
            await session.rollback()
    finally:
        await engine.dispose()
    assert rows_for(database_url, committed.id) == (1, 1)
    assert [rows_for(database_url, t.id) for t in many] == [(1, 1)] * 2
    assert rows_for(database_url, rolled_back.id) == (0, 0)
    assert rows_for(database_url, discarded.id) == (0, 0)
    assert (await tq.get(committed.id)).payload == {"driver": driver}


async def test_a_taken_idempotency_key_returns_the_owner_through_sqlalchemy_asyncpg(
    tq: AsyncTaskQueue, database_url: str
) -> None:
    # SQLAlchemy's json codecs on the asyncpg connection, not taskqueue's.
    first = await tq.enqueue("noop", {"n": 1}, idempotency_key="once")
    engine = create_async_engine(_url(database_url, "asyncpg"))
    try:
        async with engine.begin() as conn:
            again = await tq.enqueue("noop", {"n": 2}, idempotency_key="once", connection=conn)
    finally:
        await engine.dispose()
    assert again.id == first.id
    assert again.payload == {"n": 1}


def test_something_else_is_refused_naming_the_argument(taskqueue_sync: TaskQueue) -> None:
    with pytest.raises(InvalidArgument) as raised:
        taskqueue_sync.enqueue("noop", connection=object())
    assert raised.value.field == "connection"


async def test_sync_api_refuses_an_async_sqlalchemy_connection(
    taskqueue_sync: TaskQueue, database_url: str
) -> None:
    engine = create_async_engine(_url(database_url, "psycopg"))
    try:
        async with engine.connect() as conn, AsyncSession(engine) as session:
            for wrong in (conn, session):
                with pytest.raises(InvalidArgument, match="Connection or Session, not Async"):
                    taskqueue_sync.enqueue("noop", connection=wrong)
    finally:
        await engine.dispose()


async def test_async_api_refuses_a_sync_connection(tq: AsyncTaskQueue, database_url: str) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(InvalidArgument) as raised:
        await tq.enqueue("noop", connection=conn)
    assert "AsyncConnection" in str(raised.value)


def test_django_atomic_blocks_commit_or_roll_back_the_task(database_url: str) -> None:
    """A Django app (tests/django_app.py, minimal settings) enqueues inside
    transaction.atomic() without passing a connection, and with one."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.django_app", database_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ids = {name: uuid.UUID(value) for name, value in json.loads(done.stdout).items()}
    assert rows_for(database_url, ids["autocommitted"]) == (1, 1)
    assert rows_for(database_url, ids["committed"]) == (1, 1)
    assert rows_for(database_url, ids["explicit"]) == (1, 1)
    assert rows_for(database_url, ids["rolled_back"]) == (0, 0)
    assert rows_for(database_url, ids["outer_rolled_back"]) == (0, 0)
