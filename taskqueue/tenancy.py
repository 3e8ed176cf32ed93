"""A ``TaskQueue`` scoped to one tenant: ``TenantQueue(tq, "acme")``, or what
the REST API hands a request made with a tenant's token (README "Tenants").

It shares the pool and everything else of the ``TaskQueue`` it scopes, and
only narrows what that one does: every task it enqueues is stamped with its
tenant (naming another is TenantForbidden, and nothing is inserted); it reads
and changes that tenant's tasks alone (another tenant's task is
TaskNotFound, as if it did not exist); and what only an operator may do
(queue settings, workers, schedules, the operator log, quotas) raises
TenantForbidden."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, NoReturn, cast

import msgspec

from taskqueue import limits, store
from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidTask, TaskNotFound, TenantForbidden, WorkflowNotFound
from taskqueue.models import (
    Enqueued,
    FailureGroup,
    NewTask,
    OperatorAction,
    Stats,
    StreamEvent,
    Task,
    TaskEvent,
    TaskFilter,
    WorkerInfo,
)
from taskqueue.queues import Queues
from taskqueue.schedules.manager import Schedules
from taskqueue.tenants import Tenants
from taskqueue.workflows import Workflow, Workflows
from taskqueue.workflows.service import SubmittedWorkflow, WorkflowDetail

_OPERATOR_ONLY = "only an operator (a token without a tenant) may do this"


class _OperatorOnly:
    """Stands in for ``tq.queues``, ``tq.schedules`` and ``tq.tenants``:
    every use is refused."""

    def __getattr__(self, name: str) -> NoReturn:
        raise TenantForbidden(_OPERATOR_ONLY)

    def __call__(self, *args: object, **kwargs: object) -> NoReturn:
        raise TenantForbidden(_OPERATOR_ONLY)  # tq.tenants() lists every tenant


def stamped(tasks: Sequence[NewTask], tenant: str) -> list[NewTask]:
    """``tasks`` with ``tenant`` set (TenantForbidden when one names another)."""
    out: list[NewTask] = []
    for index, task in enumerate(tasks):
        given = getattr(task, "tenant", None)
        if given is not None and given != tenant:
            where = "tenant" if len(tasks) == 1 else f"tasks[{index}].tenant"
            raise TenantForbidden(f"{where}: this token acts for tenant {tenant!r} only")
        out.append(task if given == tenant else msgspec.structs.replace(task, tenant=tenant))
    return out


def _own(results: builtins.list[Enqueued], tenant: str) -> builtins.list[Enqueued]:
    """Never hand back another tenant's task. An idempotency key is its
    tenant's (0027_idempotency_per_tenant), so the owner of a taken key is
    always the caller's own task; this guards that rule where tasks leave."""
    for result in results:
        if not result.created and result.task.tenant != tenant:
            raise InvalidTask(
                "idempotency_key", "already taken by a task of another tenant; choose another key"
            )
    return results


class TenantWorkflows(Workflows):
    """``tq.workflows`` for one tenant: its tasks stamped, its workflows alone."""

    def __init__(self, base: Workflows, tenant: str) -> None:
        self.__dict__.update(base.__dict__)
        self.tenant = tenant  # also what Workflows checks depends_on against
        self._scoped = tenant

    async def submit(self, workflow: Workflow, *, connection: Any = None) -> SubmittedWorkflow:
        scoped = Workflow(workflow.name)
        tasks = stamped([step.task for step in workflow.steps], self._scoped)
        scoped.steps = [
            msgspec.structs.replace(step, task=task)
            for step, task in zip(workflow.steps, tasks, strict=True)
        ]
        return await super().submit(scoped, connection=connection)

    async def enqueue_after(
        self, tasks: Sequence[NewTask], *args: Any, **kwargs: Any
    ) -> builtins.list[Enqueued]:
        results = await super().enqueue_after(stamped(tasks, self._scoped), *args, **kwargs)
        return _own(results, self._scoped)

    async def get(self, workflow_id: uuid.UUID | str) -> WorkflowDetail:
        found = await super().get(workflow_id)
        if not found.tasks or any(t.tenant != self._scoped for t in found.tasks):
            raise WorkflowNotFound(found.id)
        return found

    async def list(
        self, *, before: uuid.UUID | None = None, limit: int = 50, tenant: str | None = None
    ) -> builtins.list[store.WorkflowSummary]:
        if tenant not in (None, self._scoped):
            raise TenantForbidden(f"this token acts for tenant {self._scoped!r} only")
        return await super().list(before=before, limit=limit, tenant=self._scoped)


class TenantQueue(TaskQueue):
    """``base`` narrowed to ``tenant``'s tasks. Closing it closes nothing:
    the pool is ``base``'s."""

    def __init__(self, base: TaskQueue, tenant: str) -> None:
        limits.check_tenant(tenant)
        self.__dict__.update(base.__dict__)
        self.tenant = tenant
        self.workflows = TenantWorkflows(base.workflows, tenant)
        self.queues = cast(Queues, _OperatorOnly())
        self.schedules = cast(Schedules, _OperatorOnly())
        self.tenants = cast(Tenants, _OperatorOnly())

    async def close(self) -> None:
        """Nothing to close: the pool belongs to the TaskQueue it scopes."""

    def _refuse(self, tenant: str | None) -> None:
        if tenant is not None and tenant != self.tenant:
            raise TenantForbidden(f"this token acts for tenant {self.tenant!r} only")

    # -- producing ---------------------------------------------------------------

    def prepare(self, tasks: Sequence[NewTask]) -> builtins.list[store.TaskRow]:
        return super().prepare(stamped(tasks, self.tenant))

    async def insert(
        self, rows: Sequence[store.TaskRow], *, connection: Any = None
    ) -> builtins.list[Enqueued]:
        for row in rows:
            if row.tenant != self.tenant:
                raise TenantForbidden(f"this token acts for tenant {self.tenant!r} only")
        return _own(await super().insert(rows, connection=connection), self.tenant)

    # -- reading and changing its own tasks ----------------------------------------

    async def get(self, task_id: uuid.UUID | str) -> Task:
        task = await super().get(task_id)
        if task.tenant != self.tenant:
            raise TaskNotFound(task.id)
        return task

    async def wait(self, task_id: uuid.UUID | str, timeout: float = 30.0) -> Task:  # noqa: ASYNC109
        await self.get(task_id)
        return await super().wait(task_id, timeout)

    async def list(self, *, tenant: str | None = None, **filters: Any) -> builtins.list[Task]:
        self._refuse(tenant)
        return await super().list(tenant=self.tenant, **filters)

    async def history(self, task_id: uuid.UUID | str) -> builtins.list[TaskEvent]:
        await self.get(task_id)
        return await super().history(task_id)

    async def cancel(self, task_id: uuid.UUID | str, *, actor: str = "local") -> Task:
        await self.get(task_id)
        return await super().cancel(task_id, actor=actor)

    async def retry(self, task_id: uuid.UUID | str, *, actor: str = "local") -> Task:
        await self.get(task_id)
        return await super().retry(task_id, actor=actor)

    async def stats(self, *, tenant: str | None = None) -> Stats:
        self._refuse(tenant)
        return await super().stats(tenant=self.tenant)

    async def failures(
        self, *, tenant: str | None = None, **filters: Any
    ) -> builtins.list[FailureGroup]:
        self._refuse(tenant)
        return await super().failures(tenant=self.tenant, **filters)

    def _bulk_tenant(self, where: TaskFilter | None) -> str | None:
        if where is not None:
            self._refuse(where.tenant)
        return self.tenant

    async def events(self, **filters: Any) -> AsyncIterator[StreamEvent]:
        async for event in super().events(**filters):
            if event.tenant == self.tenant:
                yield event

    # -- what only an operator may do ----------------------------------------------

    async def workers(
        self, *, offset: int = 0, limit: int | None = None
    ) -> builtins.list[WorkerInfo]:
        raise TenantForbidden(_OPERATOR_ONLY)

    async def actions(
        self, *, before: int | None = None, limit: int = 100
    ) -> builtins.list[OperatorAction]:
        raise TenantForbidden(_OPERATOR_ONLY)
