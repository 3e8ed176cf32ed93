"""/api/workflows: submit a graph of tasks in one transaction, read one
workflow (its status and every task with its dependencies), list them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from taskqueue.api.openapi import SECURITY, error_responses, with_body
from taskqueue.api.schemas import (
    CreateWorkflow,
    WorkflowCreated,
    WorkflowOut,
    WorkflowPage,
    WorkflowSummaryOut,
    WorkflowTaskCreated,
    WorkflowTaskOut,
)
from taskqueue.client import TaskQueue
from taskqueue.http.body import decode_body
from taskqueue.http.errors import ApiError
from taskqueue.limits import MAX_TENANT_LENGTH
from taskqueue.models import Status
from taskqueue.validation import TENANT_PATTERN
from taskqueue.workflows import MAX_WORKFLOW_TASKS, Workflow, summary_status

_decode_workflow = msgspec.json.Decoder(CreateWorkflow).decode
# 10,000 small tasks as JSON take a few MB; tasks alone are held to the API's
# usual body limit.
WORKFLOW_BODY_BYTES = 16 * 1024 * 1024


def _workflow_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(404, "not_found", f"workflow {raw[:64]!r} not found") from None


class WorkflowController(Controller):
    path = "/api/workflows"
    tags = ["workflows"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = SECURITY

    @post(
        "/",
        operation_class=with_body(CreateWorkflow, "the workflow's tasks and dependencies"),
        responses=error_responses(400, 413, 415, 422),
        request_max_body_size=WORKFLOW_BODY_BYTES,
        summary="Submit a workflow: a graph of tasks, in one transaction",
        description=(
            "Each task has a `ref`, any task field, `depends_on` (refs of tasks of this "
            "workflow) and `on_parent_failure` ('cancel': a parent failing or cancelled for "
            "good cancels it, transitively; 'run': it runs once all its parents have finished, "
            "whatever their outcome). A task waits (status `waiting`) until its parents "
            "finish; the statement that finishes its last parent queues it. A cycle, an "
            "unknown or duplicate ref, an edge between two tenants' tasks, or more than "
            "10,000 tasks: 422 with `refs` naming them, and nothing is inserted."
        ),
    )
    async def create_workflow(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue]
    ) -> Response[WorkflowCreated]:
        body = decode_body(_decode_workflow, await request.body(), envelope=3)
        if len(body.tasks) > MAX_WORKFLOW_TASKS:
            raise ApiError(
                422, "invalid_field", f"tasks: at most {MAX_WORKFLOW_TASKS} per workflow", "tasks"
            )
        wf = Workflow(body.name)
        for task in body.tasks:
            wf.task(
                task.to_new_task(),
                ref=task.ref,
                after=task.depends_on,
                on_parent_failure=task.on_parent_failure,
            )
        done = await tq.workflows.submit(wf)
        created = WorkflowCreated(
            id=done.id,
            tasks=[WorkflowTaskCreated(ref=t.ref, id=t.id, status=t.status) for t in done.tasks],
        )
        return Response(created, status_code=201)

    @get(
        "/",
        responses=error_responses(403, 422),
        summary="Workflows, newest first, with their task counts",
        opt={"query_parameters": ("cursor", "limit", "tenant")},
    )
    async def list_workflows(
        self,
        tq: NamedDependency[TaskQueue],
        cursor: Annotated[
            str | None, QueryParameter(description="next_cursor of the previous page")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
        tenant: Annotated[
            str | None,
            QueryParameter(
                description="only this tenant's workflows (a tenant's token sees only its own)",
                pattern=TENANT_PATTERN,
                max_length=MAX_TENANT_LENGTH,
            ),
        ] = None,
    ) -> WorkflowPage:
        before = None
        if cursor:
            try:
                before = uuid.UUID(cursor)
            except ValueError:
                raise ApiError(422, "invalid_field", "cursor: not a cursor", "cursor") from None
        found = await tq.workflows.list(before=before, limit=limit, tenant=tenant)
        return WorkflowPage(
            workflows=[
                WorkflowSummaryOut(status=summary_status(w), **msgspec.structs.asdict(w))
                for w in found
            ],
            next_cursor=str(found[-1].id) if len(found) == limit else None,
        )

    @get(
        "/{workflow_id:str}",
        responses=error_responses(404),
        summary="One workflow: its status and every task with its dependencies",
    )
    async def get_workflow(
        self, tq: NamedDependency[TaskQueue], workflow_id: FromPath[str]
    ) -> WorkflowOut:
        wf = await tq.workflows.get(_workflow_id(workflow_id))
        return WorkflowOut(
            id=wf.id,
            name=wf.name,
            status=wf.status,
            created_at=wf.created_at,
            tasks=[
                WorkflowTaskOut(
                    id=t.id,
                    ref=t.ref,
                    type=t.type,
                    status=Status(t.status),
                    attempts=t.attempts,
                    depends_on=[wf.refs.get(p, str(p)) for p in t.depends_on],
                    on_parent_failure=t.on_parent_failure,
                    created_at=t.created_at,
                    started_at=t.started_at,
                    completed_at=t.completed_at,
                    last_error=t.last_error,
                )
                for t in wf.tasks
            ],
        )
