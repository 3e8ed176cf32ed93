"""Bulk inserts by binary COPY: the rows of a large batch that are due now
and carry no idempotency key go into taskqueue.copied_tasks by ``COPY ...
FROM STDIN (FORMAT binary)``; enqueue_copied.sql (a write-path function: a
producer's role may stage rows, never write tasks) then moves them into
taskqueue.tasks with their events, opens their claim lanes and sends one
NOTIFY, in the same transaction. The other
rows (an idempotency key: ON CONFLICT needs a statement; a delay: run_at is
the database's clock plus it) take the one-statement insert in that
transaction too, so the batch commits or rolls back as one.

COPY skips what the one-statement insert pays per row on the server (the
JSON document parsed, one projection per row), which is what makes large
batches faster; below ``COPY_MIN_ROWS`` its extra round trips cost more."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from taskqueue.models import Enqueued
from taskqueue.store._sql import Connection, Executor, query
from taskqueue.store.task_rows import COPY_COLUMNS, TaskRow, copy_record, new_task

# Measured with `taskqueue bench` (README, Performance): below this many rows
# the one-statement insert is as fast.
COPY_MIN_ROWS = 100

Statement = Callable[[Executor, Sequence[TaskRow]], Awaitable[list[Enqueued]]]


def can_copy(conn: Executor) -> bool:
    """An asyncpg pool or connection (a pooled one is a proxy): the drivers
    behind store.adapters send every batch as one statement."""
    return isinstance(conn, asyncpg.Pool) or hasattr(conn, "copy_records_to_table")


def copyable(row: TaskRow) -> bool:
    """Due now, without an idempotency key nor an expiry counted from the
    database's clock nor a sequence (it waits for the key's previous task),
    and a plain TaskRow: COPY can take it as it is. A
    subclass (store.workflows.DependentRow) is a task that may start waiting
    for its parents, which only enqueue_dependent_tasks.sql inserts."""
    return (
        type(row) is TaskRow
        and row.idempotency_key is None
        and row.run_at is None
        and not row.delay_us
        and row.ttl_us is None
        and row.sequence_key is None
    )


async def enqueue_by_copy(
    conn: Executor, rows: Sequence[TaskRow], statement: Statement
) -> list[Enqueued]:
    """Insert ``rows`` in one transaction (the caller's, if ``conn`` is in
    one): the copyable ones by COPY, the others by ``statement``; results
    in the order of ``rows``."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as acquired:
            return await _in_transaction(acquired, rows, statement)
    return await _in_transaction(conn, rows, statement)


async def _in_transaction(
    conn: Connection, rows: Sequence[TaskRow], statement: Statement
) -> list[Enqueued]:
    if conn.is_in_transaction():
        return await _insert(conn, rows, statement)
    async with conn.transaction():
        return await _insert(conn, rows, statement)


async def _insert(
    conn: Connection, rows: Sequence[TaskRow], statement: Statement
) -> list[Enqueued]:
    copied = [row for row in rows if copyable(row)]
    others = [row for row in rows if not copyable(row)] if len(copied) < len(rows) else []
    by_statement = await statement(conn, others) if others else []
    created_at = await _copy(conn, copied)
    results = iter(by_statement)
    return [
        Enqueued(new_task(row, created_at), True) if copyable(row) else next(results)
        for row in rows
    ]


async def _copy(conn: Connection, rows: list[TaskRow]) -> datetime:
    await conn.copy_records_to_table(
        "copied_tasks",  # staged: enqueue_copied.sql moves them into tasks
        schema_name="taskqueue",
        columns=COPY_COLUMNS,
        records=[copy_record(row) for row in rows],
    )
    lanes = {(row.queue, row.type, row.priority, row.tenant or "") for row in rows}
    ids: list[uuid.UUID] = [row.id for row in rows]
    tenants = Counter(row.tenant for row in rows if row.tenant is not None)
    record = await conn.fetchrow(
        query("enqueue_copied"),
        ids,
        [lane[0] for lane in lanes],
        [lane[1] for lane in lanes],
        [lane[2] for lane in lanes],
        [lane[3] for lane in lanes],
        sorted(tenants),
        [tenants[name] for name in sorted(tenants)],
    )
    assert record is not None  # the statement always returns one row
    created_at: datetime = record["created_at"]
    return created_at
