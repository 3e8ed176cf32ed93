"""Bulk inserts in binary: the rows of a large batch that are due now and
carry no idempotency key are sent as one parameter, an array of
taskqueue.task_input rows in PostgreSQL's binary format (what ``COPY ...
(FORMAT binary)`` sends, without COPY's extra statement: the deploy roles
may not write taskqueue.tasks, so a COPY would have had to be staged), to
enqueue_copied.sql (a write-path function), which inserts them into
taskqueue.tasks with their events, opens their claim lanes and sends one
NOTIFY. The other rows (an idempotency key: ON CONFLICT needs a statement;
a delay: run_at is the database's clock plus it) take the one-statement
insert in the same transaction, so the batch commits or rolls back as one.

Binary rows skip what the one-statement insert pays per row on the server
(the JSON document parsed), which is what makes large batches faster;
below ``COPY_MIN_ROWS`` the JSON statement is as fast."""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from itertools import compress

import asyncpg

from taskqueue.models import Enqueued
from taskqueue.store._sql import Connection, Executor, query
from taskqueue.store.task_rows import TaskRow, copy_record, new_task

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
    one): the copyable ones as binary rows, the others by ``statement``
    (all of them, when fewer than ``COPY_MIN_ROWS`` are copyable); results
    in the order of ``rows``."""
    flags = list(map(copyable, rows))
    copied = list(compress(rows, flags))
    if len(copied) < COPY_MIN_ROWS:
        return await statement(conn, rows)
    if len(copied) == len(rows):  # one statement: atomic on its own
        created_at = await _copy(conn, copied)
        return [Enqueued(new_task(row, created_at), True) for row in rows]
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as acquired:
            return await _in_transaction(acquired, rows, flags, statement)
    return await _in_transaction(conn, rows, flags, statement)


async def _in_transaction(
    conn: Connection, rows: Sequence[TaskRow], flags: list[bool], statement: Statement
) -> list[Enqueued]:
    if conn.is_in_transaction():
        return await _insert(conn, rows, flags, statement)
    async with conn.transaction():
        return await _insert(conn, rows, flags, statement)


async def _insert(
    conn: Connection, rows: Sequence[TaskRow], flags: list[bool], statement: Statement
) -> list[Enqueued]:
    """``flags[i]``: whether ``rows[i]`` is copyable."""
    by_statement = await statement(
        conn, [row for row, flag in zip(rows, flags, strict=True) if not flag]
    )
    created_at = await _copy(conn, list(compress(rows, flags)))
    results = iter(by_statement)
    return [
        Enqueued(new_task(row, created_at), True) if flag else next(results)
        for row, flag in zip(rows, flags, strict=True)
    ]


_lane = operator.attrgetter("queue", "type", "priority", "tenant")


async def _copy(conn: Executor, rows: list[TaskRow]) -> datetime:
    lanes = [(q, t, p, tenant or "") for q, t, p, tenant in set(map(_lane, rows))]
    tenants = Counter(row.tenant for row in rows if row.tenant is not None)
    record = await conn.fetchrow(
        query("enqueue_copied"),
        list(map(copy_record, rows)),
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
