"""/api/tasks and /api/stats."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from taskqueue.api.group_commit import GroupCommitter
from taskqueue.api.openapi import SECURITY, error_responses, with_body
from taskqueue.api.schemas import (
    BatchTaskOut,
    CreateTask,
    CreateTasks,
    EventOut,
    TaskOut,
    TaskPage,
)
from taskqueue.client import TaskQueue
from taskqueue.http.auth import actor_of
from taskqueue.http.body import decode_body as decode_body  # also its old home
from taskqueue.http.errors import ApiError
from taskqueue.limits import MAX_KEY_LENGTH, MAX_TENANT_LENGTH
from taskqueue.models import Stats, Status, Task
from taskqueue.schedules import MAX_NAME_LENGTH as MAX_SCHEDULE_NAME_LENGTH
from taskqueue.schedules import NAME_PATTERN
from taskqueue.validation import TENANT_PATTERN, key_problem

_decode_task = msgspec.json.Decoder(CreateTask).decode
_decode_tasks = msgspec.json.Decoder(CreateTasks).decode


def parse_task_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(404, "not_found", f"task {raw[:64]!r} not found") from None


def _idempotency_key(request: Request[Any, Any, Any], body: CreateTask) -> str | None:
    header = _idempotency_header(request, MAX_KEY_LENGTH)
    if header is None:
        return body.idempotency_key
    if body.idempotency_key is not None and body.idempotency_key != header:
        raise ApiError(
            422,
            "invalid_field",
            "idempotency_key: differs from the Idempotency-Key header",
            "idempotency_key",
        )
    return header


def _idempotency_header(request: Request[Any, Any, Any], max_length: int) -> str | None:
    header = request.headers.get("idempotency-key")
    if header is None:
        return None
    # Header bytes arrive as Latin-1: UTF-8 would be stored mangled.
    problem = (
        key_problem(header, max_length=max_length)
        if header.isascii()
        else "ASCII only (send a non-ASCII key as the idempotency_key field of the body)"
    )
    if problem:
        raise ApiError(
            422, "invalid_field", f"Idempotency-Key header: {problem}", "idempotency_key"
        )
    return header


def _batch_keys(request: Request[Any, Any, Any], body: CreateTasks, limit: int) -> list[str] | None:
    """With an Idempotency-Key header, task i of the batch gets the key
    ``<key>/<i>``: the same batch sent again finds every task it made."""
    header = _idempotency_header(request, MAX_KEY_LENGTH - len(f"/{limit - 1}"))
    if header is None:
        return None
    for index, task in enumerate(body.tasks):
        if task.idempotency_key is not None:
            field = f"tasks[{index}].idempotency_key"
            raise ApiError(
                422,
                "invalid_field",
                f"{field}: give the Idempotency-Key header or per-task keys, not both",
                field,
            )
    return [f"{header}/{index}" for index in range(len(body.tasks))]


# What an operator does to one task by its id: 200 with the task as it now is.
_ONE_TASK_ACTION: dict[str, Any] = {"status_code": 200, "responses": error_responses(404, 409)}


async def _act_on(
    request: Request[Any, Any, State],
    action: Callable[..., Awaitable[Task]],
    task_id: str,
) -> TaskOut:
    return TaskOut.of(await action(parse_task_id(task_id), actor=actor_of(request)))


LIST_PARAMETERS = (
    "status",
    "queue",
    "type",
    "created_after",
    "created_before",
    "cursor",
    "limit",
    "schedule",
    "tenant",
)


class TaskController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = SECURITY

    @post(
        "/",
        operation_class=with_body(CreateTask, "the task to enqueue"),
        responses=error_responses(400, 413, 415, 422),
        summary="Enqueue a task",
        description=(
            "201 with the new task once it and its task_queued event are committed. "
            "With an Idempotency-Key header (or idempotency_key) already used, 200 with the "
            "original task and no new row. With `depends_on` (ids of existing tasks) the "
            "task is `waiting` until they finish (one that already succeeded counts as done; "
            "one that failed or was cancelled cancels it, or with `on_parent_failure: run` "
            "counts as done); an unknown id, or a task of another tenant (dependencies never "
            "cross tenants), is a 422 naming depends_on."
        ),
    )
    async def create_task(
        self, request: Request[Any, Any, State], state: State, tq: NamedDependency[TaskQueue]
    ) -> Response[TaskOut]:
        body = decode_body(_decode_task, await request.body(), envelope=1)
        key = _idempotency_key(request, body)
        if body.depends_on is not None:
            (waits,) = await tq.workflows.enqueue_after(
                [body.to_new_task(key)],
                [body.depends_on],
                on_parent_failure=[body.on_parent_failure],
            )
            return Response(TaskOut.of(waits.task), status_code=201 if waits.created else 200)
        committer: GroupCommitter = state.group_committer
        (row,) = tq.prepare([body.to_new_task(key)])
        result = await committer.submit(row)
        return Response(TaskOut.of(result.task), status_code=201 if result.created else 200)

    @post(
        "/batch",
        operation_class=with_body(CreateTasks, "tasks to enqueue, in one statement"),
        responses=error_responses(400, 413, 415, 422),
        summary="Enqueue many tasks in one statement",
        description=(
            "All or nothing: one invalid task rejects the batch (422 naming tasks[i].field). "
            "201 when the request created any task, 200 when every task already existed; "
            "`created` says which. With an Idempotency-Key header K, task i gets the key "
            "K/i: the same batch sent again returns the original tasks with 200. Per-task "
            "idempotency_key fields work as for single tasks (not together with the header)."
        ),
    )
    async def create_tasks(
        self, request: Request[Any, Any, State], state: State, tq: NamedDependency[TaskQueue]
    ) -> Response[list[BatchTaskOut]]:
        body = decode_body(_decode_tasks, await request.body(), envelope=3)
        limit: int = state.settings.max_batch_size
        if not 0 < len(body.tasks) <= limit:
            raise ApiError(422, "invalid_field", f"tasks: 1 to {limit} tasks per batch", "tasks")
        keys = _batch_keys(request, body, limit)
        new_tasks = [t.to_new_task() for t in body.tasks]
        if any(t.depends_on is not None for t in body.tasks):
            results = await tq.workflows.enqueue_after(
                new_tasks,
                [t.depends_on or [] for t in body.tasks],
                on_parent_failure=[t.on_parent_failure for t in body.tasks],
                member_keys=keys,
            )
        else:
            rows = tq.prepare(new_tasks)
            if keys is not None:
                # Set after validation: only this derivation makes keys of the
                # member shape (K/i), which producers' own keys may not take.
                for row, key in zip(rows, keys, strict=True):
                    row.idempotency_key = key
            # insert, not submit: the payloads stay the JSON sent and are
            # written back out as they are.
            results = await tq.insert(rows)
        created = any(r.created for r in results)
        return Response(
            [BatchTaskOut.of(r.task, created=r.created) for r in results],
            status_code=201 if created else 200,
        )

    @get(
        "/",
        responses=error_responses(422),
        summary="List tasks, newest first, with keyset pagination",
        description=(
            "Datetimes need a zone (2030-01-01T00:00:00Z) and a year from 1970 to 9998; "
            "an unknown query parameter is a 422 naming it."
        ),
        opt={"query_parameters": LIST_PARAMETERS},
    )
    async def list_tasks(
        self,
        tq: NamedDependency[TaskQueue],
        status: FromQuery[Status | None] = None,
        queue: FromQuery[str | None] = None,
        task_type: Annotated[str | None, QueryParameter(name="type")] = None,
        created_after: FromQuery[datetime | None] = None,
        created_before: FromQuery[datetime | None] = None,
        cursor: Annotated[
            str | None, QueryParameter(description="next_cursor of the previous page")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
        schedule: Annotated[
            str | None,
            QueryParameter(
                description="only tasks this schedule fired",
                pattern=NAME_PATTERN,
                max_length=MAX_SCHEDULE_NAME_LENGTH,
            ),
        ] = None,
        tenant: Annotated[
            str | None,
            QueryParameter(
                description="only this tenant's tasks (a tenant's token sees only its own)",
                pattern=TENANT_PATTERN,
                max_length=MAX_TENANT_LENGTH,
            ),
        ] = None,
    ) -> TaskPage:
        before: uuid.UUID | None = None
        if cursor:
            try:
                before = uuid.UUID(cursor)
            except ValueError:
                raise ApiError(422, "invalid_field", "cursor: not a cursor", "cursor") from None
        tasks = await tq.list(
            status=status,
            queue=queue,
            type=task_type,
            created_after=created_after,
            created_before=created_before,
            cursor=before,
            limit=limit,
            schedule=schedule,
            tenant=tenant,
        )
        next_cursor = str(tasks[-1].id) if len(tasks) == limit else None
        return TaskPage(tasks=[TaskOut.of(t) for t in tasks], next_cursor=next_cursor)

    @get("/{task_id:str}", responses=error_responses(404), summary="One task")
    async def get_task(self, tq: NamedDependency[TaskQueue], task_id: FromPath[str]) -> TaskOut:
        return TaskOut.of(await tq.get(parse_task_id(task_id)))

    @get(
        "/{task_id:str}/history",
        responses=error_responses(404),
        summary="Every event of one task, oldest first",
    )
    async def get_history(
        self, tq: NamedDependency[TaskQueue], task_id: FromPath[str]
    ) -> list[EventOut]:
        return [EventOut.of(e) for e in await tq.history(parse_task_id(task_id))]

    @post(
        "/{task_id:str}/cancel",
        summary="Cancel a queued task",
        **_ONE_TASK_ACTION,
    )
    async def cancel_task(
        self,
        request: Request[Any, Any, State],
        tq: NamedDependency[TaskQueue],
        task_id: FromPath[str],
    ) -> TaskOut:
        return await _act_on(request, tq.cancel, task_id)

    @post(
        "/{task_id:str}/retry",
        summary="Put a failed or cancelled task back in its queue",
        **_ONE_TASK_ACTION,
    )
    async def retry_task(
        self,
        request: Request[Any, Any, State],
        tq: NamedDependency[TaskQueue],
        task_id: FromPath[str],
    ) -> TaskOut:
        return await _act_on(request, tq.retry, task_id)


@get(
    "/api/stats",
    security=SECURITY,
    responses=error_responses(403, 422),
    tags=["tasks"],
    summary="Task counts, in total and per queue",
    opt={"query_parameters": ("tenant",)},
)
async def get_stats(
    tq: NamedDependency[TaskQueue],
    tenant: Annotated[
        str | None,
        QueryParameter(
            description="only this tenant's tasks (a tenant's token counts only its own)",
            pattern=TENANT_PATTERN,
            max_length=MAX_TENANT_LENGTH,
        ),
    ] = None,
) -> Stats:
    return await tq.stats(tenant=tenant)
