"""Tasks: inserting them (one or many, idempotency keys honoured), reading
one, a page, a search or a history, cancelling or retrying one, and the
bulk actions (retry, cancel, delete a chunk)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from taskqueue.models import (
    TASK_FIELDS,
    BulkResult,
    Enqueued,
    FailureGroup,
    Status,
    Task,
    TaskEvent,
    TaskFilter,
)
from taskqueue.store._sql import Executor, query
from taskqueue.store.bulk_copy import COPY_MIN_ROWS, can_copy, enqueue_by_copy
from taskqueue.store.task_rows import TaskRow as TaskRow  # producers build store.TaskRow
from taskqueue.store.task_rows import new_task

_encode_json = msgspec.json.Encoder().encode


def _task(record: asyncpg.Record) -> Task:
    fields = {field: record[field] for field in TASK_FIELDS}
    fields["status"] = Status(fields["status"])
    return Task(**fields)


async def enqueue_tasks(conn: Executor, rows: Sequence[TaskRow]) -> list[Enqueued]:
    """Insert ``rows`` in one transaction; rows whose idempotency key is taken
    come back as the task that owns the key, with ``created=False``. Large
    batches go by COPY (see bulk_copy) on asyncpg, the others, and every
    batch sent through another driver (store.adapters), in one statement."""
    if not rows:
        return []
    if len(rows) >= COPY_MIN_ROWS and can_copy(conn):
        return await enqueue_by_copy(conn, rows, enqueue_tasks_by_statement)
    return await enqueue_tasks_by_statement(conn, rows)


async def enqueue_tasks_by_statement(conn: Executor, rows: Sequence[TaskRow]) -> list[Enqueued]:
    """``enqueue_tasks`` in one statement, whatever the size (the benchmark's
    reference for the COPY path)."""
    waiting: frozenset[uuid.UUID] = frozenset()
    if any(row.sequence_key is not None for row in rows):
        # A task of a sequence waits for the key's previous task: the
        # dependencies' statement (store.workflows) links it to it.
        record = await conn.fetchrow(
            query("enqueue_dependent_tasks"), _encode_json(rows), b"[]", None, ""
        )
        assert record is not None  # the statement always returns one row
        waiting = frozenset(record["waiting_ids"] or ())
    elif len(rows) == 1:
        record = await conn.fetchrow(query("enqueue_task"), *msgspec.structs.astuple(rows[0]))
    else:
        record = await conn.fetchrow(query("enqueue_tasks"), _encode_json(rows))
    assert record is not None  # the statement always returns one row
    # The statement returns the ids it inserted and its start time, not a row per
    # task: every other column is what we sent, and decoding 1,000 rows would
    # cost the client more than the database spends inserting them.
    inserted_ids: list[uuid.UUID] = record["ids"] or []
    created_at: datetime = record["created_at"]
    if waiting:
        return [
            Enqueued(new_task(row, created_at, _status(row.id, waiting)), True)
            if row.id in inserted_ids
            else await _owner(conn, row)
            for row in rows
        ]
    if len(inserted_ids) == len(rows):
        return [Enqueued(new_task(row, created_at), True) for row in rows]
    inserted = set(inserted_ids)
    taken = [r for r in rows if r.id not in inserted and r.idempotency_key]
    found = await conn.fetch(
        query("find_tasks_by_idempotency_key"),
        [r.idempotency_key for r in taken],
        [r.tenant or "" for r in taken],
    )
    # A key is its tenant's (0027_idempotency_per_tenant).
    existing = {(rec["tenant"] or "", rec["idempotency_key"]): _task(rec) for rec in found}
    results: list[Enqueued] = []
    for row in rows:
        if row.id in inserted:
            results.append(Enqueued(new_task(row, created_at), True))
            continue
        owner = existing.get((row.tenant or "", row.idempotency_key or ""))
        if owner is None:  # pragma: no cover - only if the owner was deleted meanwhile
            raise RuntimeError(f"task {row.id} was neither inserted nor found by its key")
        results.append(Enqueued(owner, False))
    return results


def _status(task_id: uuid.UUID, waiting: frozenset[uuid.UUID]) -> Status:
    return Status.WAITING if task_id in waiting else Status.QUEUED


async def _owner(conn: Executor, row: TaskRow) -> Enqueued:
    """The task that owns ``row``'s idempotency key (``row`` was not inserted)."""
    owner = await find_task_by_key(conn, row.idempotency_key or "", row.tenant)
    if owner is None:  # pragma: no cover - only if the owner was deleted meanwhile
        raise RuntimeError(f"task {row.id} was neither inserted nor found by its key")
    return Enqueued(owner, False)


async def find_task_by_key(conn: Executor, key: str, tenant: str | None = None) -> Task | None:
    """The task of ``tenant`` (None: no tenant) that owns idempotency key ``key``."""
    found = await conn.fetch(query("find_tasks_by_idempotency_key"), [key], [tenant or ""])
    return _task(found[0]) if found else None


async def get_task(conn: Executor, task_id: uuid.UUID) -> Task | None:
    record = await conn.fetchrow(query("get_task"), task_id)
    return None if record is None else _task(record)


async def list_tasks(
    conn: Executor,
    *,
    status: Status | None = None,
    queue: str | None = None,
    task_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    before_id: uuid.UUID | None = None,
    limit: int = 100,
    schedule: str | None = None,
    tenant: str | None = None,
) -> list[Task]:
    records = await conn.fetch(
        query("list_tasks"),
        None if status is None else status.value,
        queue,
        task_type,
        created_after,
        created_before,
        before_id,
        limit,
        schedule,
        tenant,
    )
    return [_task(r) for r in records]


async def task_history(conn: Executor, task_id: uuid.UUID) -> list[TaskEvent]:
    records = await conn.fetch(query("task_history"), task_id)
    return [TaskEvent(**{**dict(r.items()), "status": Status(r["status"])}) for r in records]


async def cancel_task(conn: Executor, task_id: uuid.UUID, actor: str = "local") -> Task | None:
    """The cancelled task, or None when it was not queued or running (or does not exist)."""
    record = await conn.fetchrow(query("cancel_task"), task_id, actor)
    return None if record is None else _task(record)


async def retry_task(conn: Executor, task_id: uuid.UUID, actor: str = "local") -> Task | None:
    """The requeued task, or None when it was not failed/cancelled (or does not exist)."""
    record = await conn.fetchrow(query("retry_task"), task_id, actor)
    return None if record is None else _task(record)


async def search_tasks(
    conn: Executor,
    text: str,
    *,
    status: Status | None = None,
    queue: str | None = None,
    task_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    before_id: uuid.UUID | None = None,
    limit: int = 50,
    tenant: str | None = None,
) -> list[Task]:
    """Tasks whose name starts with ``text`` or whose idempotency key is ``text``."""
    records = await conn.fetch(
        query("search_tasks"),
        text,
        None if status is None else status.value,
        queue,
        task_type,
        created_after,
        created_before,
        before_id,
        limit,
        tenant,
    )
    return [_task(r) for r in records]


async def failure_groups(
    conn: Executor,
    queue: str | None = None,
    task_type: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    tenant: str | None = None,
) -> list[FailureGroup]:
    records = await conn.fetch(
        query("failure_groups"), queue, task_type, since, limit, offset, tenant
    )
    return [FailureGroup(**dict(r.items())) for r in records]


BULK_ACTIONS = {"retry": "retry_tasks", "cancel": "cancel_tasks", "delete": "delete_tasks"}


async def bulk_action(
    conn: Executor,
    action: str,
    *,
    ids: Sequence[uuid.UUID] | None,
    where: TaskFilter | None,
    after: uuid.UUID | None,
    limit: int,
    actor: str,
    asked: Any,
    tenant: str | None = None,
) -> BulkResult:
    """Retry, cancel or delete a chunk of tasks in one statement (see
    retry_tasks.sql, cancel_tasks.sql, delete_tasks.sql)."""
    where = where or TaskFilter()
    record = await conn.fetchrow(
        query(BULK_ACTIONS[action]),
        None if ids is None else list(ids),
        None if where.status is None else where.status.value,
        where.queue,
        where.type,
        where.error,
        where.created_before,
        after,
        limit,
        actor,
        asked,
        tenant,
    )
    assert record is not None  # the statement always returns its summary
    more = record["matched"] == limit and record["last_id"] is not None
    return BulkResult(
        matched=record["matched"],
        changed=record["changed"],
        next=record["last_id"] if more else None,
    )
