"""store.adapters: the store's statements on psycopg whatever codecs the
caller's connection carries, and run_sync's refusal of a statement that
would suspend."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg.types.datetime import TimestampLoader
from psycopg.types.string import TextLoader

from taskqueue import store
from taskqueue.models import NewTask
from taskqueue.store.adapters import PsycopgSync, as_connection, run_sync
from taskqueue.sync import TaskQueue


def test_a_connection_with_text_json_and_naive_times_still_reads_values(
    taskqueue_sync: TaskQueue, database_url: str
) -> None:
    """As Django sets up its connections: jsonb loaded as text, and (USE_TZ
    off) timestamptz as naive datetimes. The adapter's cursors read JSON and
    aware datetimes regardless, and leave the connection's own settings be."""
    first = taskqueue_sync.enqueue("noop", {"n": 1}, idempotency_key="k")
    with psycopg.connect(database_url) as conn:
        conn.adapters.register_loader("jsonb", TextLoader)
        conn.adapters.register_loader("timestamptz", TimestampLoader)
        results = taskqueue_sync.submit(
            [NewTask(type="noop", idempotency_key="k"), NewTask(type="noop", payload=[1])],
            connection=conn,
        )
        owner, created = (r.task for r in results)
        assert (owner.id, owner.payload) == (first.id, {"n": 1})  # read back: a value
        assert owner.created_at.tzinfo is not None
        got = run_sync(store.get_task(as_connection(PsycopgSync(conn)), created.id))
        assert got is not None and got.payload == [1] and got.created_at == created.created_at
        # The connection's own cursors still load as the caller set them up.
        row = conn.execute("SELECT payload, created_at FROM taskqueue.tasks LIMIT 1").fetchone()
        assert row is not None
        assert isinstance(row[0], str)
        assert isinstance(row[1], datetime) and row[1].tzinfo is None


def test_run_sync_refuses_a_coroutine_that_suspends() -> None:
    async def suspends() -> Any:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspended"):
        run_sync(suspends())
