"""``tq.workflows``: submitting a workflow's graph, enqueueing tasks that
depend on existing ones, and reading workflows. Turns graphs and depends_on
lists into rows (through ``enqueue``, so every task is checked as any other)
and makes one call to the store; inside the caller's transaction when given
``connection``, like ``TaskQueue.enqueue``."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from taskqueue import enqueue, store
from taskqueue.db import Runner
from taskqueue.errors import InvalidTask, WorkflowNotFound
from taskqueue.models import Enqueued, NewTask, Status, Task, uuid7
from taskqueue.registry import Registry
from taskqueue.validation import as_task_id
from taskqueue.workflows.graph import ON_PARENT_FAILURE, Workflow, check


class SubmittedTask(msgspec.Struct, frozen=True):
    ref: str
    id: uuid.UUID
    status: Status


class SubmittedWorkflow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    tasks: list[SubmittedTask]


class WorkflowDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow as GET /api/workflows/{id}, the CLI and the dashboard show it."""

    id: uuid.UUID
    name: str
    created_at: datetime
    status: str  # running | succeeded | failed | cancelled
    tasks: list[store.WorkflowTask]
    refs: dict[uuid.UUID, str]  # task id -> ref, to name parents


def workflow_status(statuses: Sequence[str]) -> str:
    """running while any task is unfinished; else succeeded when all did,
    failed when any failed, cancelled otherwise."""
    if any(s in ("waiting", "queued", "running") for s in statuses):
        return "running"
    if all(s == "succeeded" for s in statuses):
        return "succeeded"
    return "failed" if "failed" in statuses else "cancelled"


def summary_status(w: store.WorkflowSummary) -> str:
    if w.unfinished:
        return "running"
    if w.succeeded == w.total:
        return "succeeded"
    return "failed" if w.failed else "cancelled"


class Workflows:
    # Set on a tenant's (taskqueue.tenancy): parents in depends_on must be its own.
    tenant: str | None = None

    def __init__(self, runner: Runner, registry: Registry | None) -> None:
        self._db = runner
        self._registry = registry

    async def submit(
        self, workflow: Workflow, *, connection: store.Connection | None = None
    ) -> SubmittedWorkflow:
        """Insert the whole graph in one statement; raises InvalidGraph (a
        cycle, an unknown or duplicate ref, an edge between two tenants'
        tasks, too many tasks: nothing is inserted) or InvalidTask naming
        ``tasks[i].field``."""
        steps = workflow.steps
        check(steps)
        name = workflow.name
        if type(name) is not str or len(name) > 200 or not name.isprintable():
            raise InvalidTask("name", "printable text of at most 200 characters")
        rows = enqueue.prepare([s.task for s in steps], self._registry)
        workflow_id = uuid7()
        ids = {s.ref: row.id for s, row in zip(steps, rows, strict=True)}
        dependent = [
            store.DependentRow(
                **msgspec.structs.asdict(row), workflow_id=workflow_id, workflow_ref=step.ref
            )
            for step, row in zip(steps, rows, strict=True)
        ]
        edges = [
            store.Dependency(ids[step.ref], ids[parent], step.on_parent_failure)
            for step in steps
            for parent in dict.fromkeys(step.depends_on)
        ]

        async def run(conn: store.Executor) -> store.DependentInsert:
            return await store.enqueue_dependent_tasks(
                conn, dependent, edges, workflow_id=workflow_id, workflow_name=name
            )

        done = await _admitted(run(connection) if connection is not None else self._db.run(run))
        return SubmittedWorkflow(
            id=workflow_id,
            tasks=[
                SubmittedTask(step.ref, ids[step.ref], _status_of(ids[step.ref], done))
                for step in steps
            ],
        )

    async def enqueue(
        self,
        type: str,
        payload: Any = None,
        *,
        depends_on: Sequence[uuid.UUID | str],
        on_parent_failure: str = "cancel",
        connection: store.Connection | None = None,
        **fields: Any,
    ) -> Task:
        """``tq.enqueue`` for a task that waits for the existing tasks
        ``depends_on`` (``fields``: any NewTask field, e.g. queue, priority);
        see ``enqueue_after``."""
        new = NewTask(type=type, payload={} if payload is None else payload, **fields)
        (result,) = await self.enqueue_after(
            [new], [depends_on], on_parent_failure=[on_parent_failure], connection=connection
        )
        return result.task

    async def enqueue_after(
        self,
        tasks: Sequence[NewTask],
        depends_on: Sequence[Sequence[uuid.UUID | str]],
        *,
        on_parent_failure: Sequence[str] | None = None,
        connection: store.Connection | None = None,
        member_keys: Sequence[str] | None = None,
    ) -> builtins.list[Enqueued]:
        """Insert ``tasks`` (one statement), task i waiting for the existing
        tasks ``depends_on[i]``. A parent that already succeeded counts as
        done; one that failed or was cancelled cancels the task at once
        ('cancel', the default) or counts as done ('run'). An id that names
        no task, or a task of another tenant (dependencies never cross tenants),
        raises InvalidTask naming ``depends_on`` (``tasks[i].depends_on`` in a
        batch). ``member_keys``: a batch's derived idempotency keys (K/i),
        set after validation, which no producer's own key may look like."""
        count = len(tasks)
        if len(depends_on) != count:
            raise InvalidTask("depends_on", "one list of parent ids per task")
        modes = list(on_parent_failure) if on_parent_failure is not None else ["cancel"] * count
        parents: list[list[uuid.UUID]] = []
        for index, (ids, mode) in enumerate(zip(depends_on, modes, strict=True)):
            field = "depends_on" if count == 1 else f"tasks[{index}].depends_on"
            if mode not in ON_PARENT_FAILURE:
                where = "on_parent_failure" if count == 1 else f"tasks[{index}].on_parent_failure"
                raise InvalidTask(where, "'cancel' or 'run'")
            if len(ids) > 1000:
                raise InvalidTask(field, "at most 1000 parents")
            found = [as_task_id(i) for i in ids]
            if any(f is None for f in found):
                raise InvalidTask(field, "task ids (UUIDs)")
            parents.append(list(dict.fromkeys(f for f in found if f is not None)))
        rows = enqueue.prepare(tasks, self._registry)
        for row, key in zip(rows, member_keys or (), strict=member_keys is not None):
            row.idempotency_key = key
        dependent = [store.DependentRow(**msgspec.structs.asdict(row)) for row in rows]
        edges = [
            store.Dependency(row.id, parent, mode)
            for row, ids, mode in zip(rows, parents, modes, strict=True)
            for parent in ids
        ]
        wanted = sorted({e.parent for e in edges})

        async def run(conn: store.Connection) -> store.DependentInsert:
            # Checked in the insert's transaction; a parent deleted in between
            # had finished (only finished tasks are deleted) and counts as done.
            existing = await store.existing_task_ids(conn, wanted, self.tenant)
            for index, (row, ids) in enumerate(zip(rows, parents, strict=True)):
                field = "depends_on" if count == 1 else f"tasks[{index}].depends_on"
                missing = [str(i) for i in ids if i not in existing]
                if missing:
                    raise InvalidTask(field, f"no such task: {', '.join(missing)}")
                # Dependencies never cross tenants (an operator's neither): a
                # dependent reads its parents' results, and a sequence's
                # links are its tenant's alone (settle_children).
                foreign = [str(i) for i in ids if existing[i] != row.tenant]
                if foreign:
                    raise InvalidTask(field, f"tasks of another tenant: {', '.join(foreign)}")
            return await store.enqueue_dependent_tasks(conn, dependent, edges)

        if connection is not None:
            done = await _admitted(run(connection))
        else:
            async with self._db.pool.acquire() as conn, conn.transaction():
                done = await _admitted(run(conn))
        results = await enqueue.insert(lambda batch: _as_enqueued(batch, done, self._db), dependent)
        return enqueue.decode_payloads(results) if connection is None else results

    async def get(self, workflow_id: uuid.UUID | str) -> WorkflowDetail:
        found = as_task_id(workflow_id)
        if found is None:
            raise WorkflowNotFound(str(workflow_id)[:64])
        row = await self._db.run(store.get_workflow, found)
        if row is None:
            raise WorkflowNotFound(found)
        return WorkflowDetail(
            id=row.id,
            name=row.name,
            created_at=row.created_at,
            status=workflow_status([t.status for t in row.tasks]),
            tasks=row.tasks,
            refs={t.id: t.ref or str(t.id) for t in row.tasks},
        )

    async def list(
        self, *, before: uuid.UUID | None = None, limit: int = 50, tenant: str | None = None
    ) -> builtins.list[store.WorkflowSummary]:
        """Newest first; ``tenant``: only workflows whose tasks belong to it."""
        if type(limit) is not int or not 1 <= limit <= 1000:
            raise InvalidTask("limit", "an integer from 1 to 1000")
        return await self._db.run(store.list_workflows, before=before, limit=limit, tenant=tenant)


def _status_of(task_id: uuid.UUID, done: store.DependentInsert) -> Status:
    if task_id in done.waiting:
        return Status.WAITING
    if task_id in done.cancelled:
        return Status.CANCELLED
    return Status.QUEUED


async def _as_enqueued(
    rows: Sequence[store.TaskRow], done: store.DependentInsert, runner: Runner
) -> builtins.list[Enqueued]:
    """The tasks as inserted (built from what was sent), or, for a key that
    was taken, the task that owns it."""
    results: builtins.list[Enqueued] = []
    for row in rows:
        if row.id in done.ids:
            task = store.new_task(row, done.created_at, _status_of(row.id, done))
            results.append(Enqueued(task, True))
            continue
        owner = await runner.run(store.find_task_by_key, row.idempotency_key or "", row.tenant)
        if owner is None:  # pragma: no cover - only if the owner was deleted meanwhile
            raise RuntimeError(f"task {row.id} was neither inserted nor found by its key")
        results.append(Enqueued(owner, False))
    return results


async def _admitted(insert: Awaitable[store.DependentInsert]) -> store.DependentInsert:
    """The insert's outcome; QuotaExceeded when a tenant's quota refused it."""
    try:
        return await insert
    except Exception as exc:
        enqueue.refuse_over_quota(exc)
        raise
