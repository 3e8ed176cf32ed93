"""Dependencies and workflows: inserting tasks that wait for others (a
workflow's graph, or depends_on existing tasks) in one statement, reading a
workflow and the list of them, and the reconciler's pass. Releasing
dependents is not here: the statements that finish a parent do it
(taskqueue.settle_children, migration 0010_workflows)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from taskqueue.store._sql import Executor, query
from taskqueue.store.task_rows import TaskRow

_encode_json = msgspec.json.Encoder().encode


class DependentRow(TaskRow, kw_only=True, gc=False, omit_defaults=True):
    """A new task that may wait for others, and its place in a workflow."""

    workflow_id: uuid.UUID | None = None
    workflow_ref: str | None = None


class Dependency(msgspec.Struct, frozen=True, gc=False):
    """``child`` waits for ``parent``; ``on_parent_failure``: 'cancel' | 'run'."""

    child: uuid.UUID
    parent: uuid.UUID
    on_parent_failure: str = "cancel"


class DependentInsert(msgspec.Struct, frozen=True, kw_only=True):
    """What enqueue_dependent_tasks.sql did: the ids it inserted (a task whose
    idempotency key was taken is not among them), when, and which of them
    started waiting or were cancelled at once (by a parent that had already
    failed)."""

    ids: frozenset[uuid.UUID]
    created_at: datetime
    waiting: frozenset[uuid.UUID]
    cancelled: frozenset[uuid.UUID]


class WorkflowTask(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    ref: str | None
    type: str
    status: str
    attempts: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    last_error: str | None
    depends_on: list[uuid.UUID]  # parent ids
    on_parent_failure: list[str]  # per parent, in the same order
    tenant: str | None = None


class WorkflowRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    created_at: datetime
    tasks: list[WorkflowTask]


class WorkflowSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    created_at: datetime
    total: int
    unfinished: int
    succeeded: int
    failed: int
    cancelled: int


async def enqueue_dependent_tasks(
    conn: Executor,
    rows: Sequence[DependentRow],
    dependencies: Sequence[Dependency],
    *,
    workflow_id: uuid.UUID | None = None,
    workflow_name: str = "",
) -> DependentInsert:
    """Insert ``rows``, their ``dependencies`` and the workflow (when
    ``workflow_id``) in one statement."""
    record = await conn.fetchrow(
        query("enqueue_dependent_tasks"),
        _encode_json(rows),
        _encode_json(dependencies),
        workflow_id,
        workflow_name,
    )
    assert record is not None  # the statement always returns one row
    return DependentInsert(
        ids=frozenset(record["ids"] or ()),
        created_at=record["created_at"],
        waiting=frozenset(record["waiting_ids"] or ()),
        cancelled=frozenset(record["cancelled_ids"] or ()),
    )


async def existing_task_ids(
    conn: Executor, ids: Sequence[uuid.UUID], tenant: str | None = None
) -> dict[uuid.UUID, str | None]:
    """Which of ``ids`` exist (``tenant``: and belong to that tenant), with
    the tenant of each."""
    found = await conn.fetch(query("existing_task_ids"), list(ids), tenant)
    return {r["id"]: r["tenant"] for r in found}


async def get_workflow(conn: Executor, workflow_id: uuid.UUID) -> WorkflowRow | None:
    records = await conn.fetch(query("get_workflow"), workflow_id)
    if not records:
        return None
    first = records[0]
    tasks = [
        WorkflowTask(
            id=r["id"],
            ref=r["ref"],
            type=r["type"],
            status=r["status"],
            attempts=r["attempts"],
            created_at=r["created_at"],
            started_at=r["started_at"],
            completed_at=r["completed_at"],
            last_error=r["last_error"],
            depends_on=list(r["depends_on"]),
            on_parent_failure=list(r["on_parent_failure"]),
            tenant=r["tenant"],
        )
        for r in records
        if r["id"] is not None
    ]
    return WorkflowRow(
        id=first["workflow_id"],
        name=first["workflow_name"],
        created_at=first["workflow_created_at"],
        tasks=tasks,
    )


async def list_workflows(
    conn: Executor, *, before: uuid.UUID | None = None, limit: int = 50, tenant: str | None = None
) -> list[WorkflowSummary]:
    records = await conn.fetch(query("list_workflows"), before, limit, tenant)
    return [WorkflowSummary(**dict(r.items())) for r in records]


async def reconcile_waiting(conn: Executor, *, limit: int, worker_id: str) -> tuple[int, int]:
    """One reconciler pass (see reconcile_waiting.sql): (released, cancelled)."""
    record = await conn.fetchrow(query("reconcile_waiting"), limit, worker_id)
    assert record is not None
    return record["released"], record["cancelled"]
