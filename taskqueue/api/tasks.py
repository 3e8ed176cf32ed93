"""/api/tasks and /api/stats."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter

from taskqueue.api.errors import ApiError
from taskqueue.api.group_commit import GroupCommitter
from taskqueue.api.openapi import SECURITY, with_body
from taskqueue.api.schemas import (
    CreateTask,
    CreateTasks,
    ErrorBody,
    EventOut,
    TaskOut,
    TaskPage,
)
from taskqueue.client import MAX_KEY_LENGTH, TaskQueue
from taskqueue.models import Stats, Status
from taskqueue.schedules import MAX_NAME_LENGTH as MAX_SCHEDULE_NAME_LENGTH
from taskqueue.schedules import NAME_PATTERN

_decode_task = msgspec.json.Decoder(CreateTask).decode
_decode_tasks = msgspec.json.Decoder(CreateTasks).decode


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    described = {
        400: "malformed JSON",
        401: "missing or invalid bearer token",
        403: "the token lacks the needed scope",
        404: "no such task (or not a task id)",
        409: "the task's status does not allow this",
        413: "request body over the size limit",
        422: "a field is invalid; `field` names it",
        503: "the database cannot be reached; nothing was changed",
    }
    return {
        code: ResponseSpec(data_container=ErrorBody, description=described[code])
        for code in (401, 403, 503, *codes)
    }


def parse_task_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(404, "not_found", f"task {raw[:64]!r} not found") from None


def _idempotency_key(request: Request[Any, Any, Any], body: CreateTask) -> str | None:
    header = request.headers.get("idempotency-key")
    if header is None:
        return body.idempotency_key
    if not 0 < len(header) <= MAX_KEY_LENGTH:
        raise ApiError(
            422,
            "invalid_field",
            f"Idempotency-Key header: 1 to {MAX_KEY_LENGTH} characters",
            "idempotency_key",
        )
    if body.idempotency_key is not None and body.idempotency_key != header:
        raise ApiError(
            422,
            "invalid_field",
            "idempotency_key: differs from the Idempotency-Key header",
            "idempotency_key",
        )
    return header


class TaskController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = SECURITY

    @post(
        "/",
        operation_class=with_body(CreateTask, "the task to enqueue"),
        responses=_errors(400, 413, 422),
        summary="Enqueue a task",
        description=(
            "201 with the new task once it and its task_queued event are committed. "
            "With an Idempotency-Key header (or idempotency_key) already used, 200 with the "
            "original task and no new row."
        ),
    )
    async def create_task(
        self, request: Request[Any, Any, State], state: State, tq: NamedDependency[TaskQueue]
    ) -> Response[TaskOut]:
        body = _decode_task(await request.body())
        key = _idempotency_key(request, body)
        committer: GroupCommitter = state.group_committer
        (row,) = tq.prepare([body.to_new_task(key)])
        result = await committer.submit(row)
        return Response(TaskOut.of(result.task), status_code=201 if result.created else 200)

    @post(
        "/batch",
        operation_class=with_body(CreateTasks, "tasks to enqueue, in one statement"),
        responses=_errors(400, 413, 422),
        summary="Enqueue many tasks in one statement",
    )
    async def create_tasks(
        self, request: Request[Any, Any, State], state: State, tq: NamedDependency[TaskQueue]
    ) -> Response[list[TaskOut]]:
        body = _decode_tasks(await request.body())
        limit: int = state.settings.max_batch_size
        if not 0 < len(body.tasks) <= limit:
            raise ApiError(422, "invalid_field", f"tasks: 1 to {limit} tasks per batch", "tasks")
        results = await tq.submit([t.to_new_task() for t in body.tasks])
        return Response([TaskOut.of(r.task) for r in results], status_code=201)

    @get(
        "/",
        responses=_errors(422),
        summary="List tasks, newest first, with keyset pagination",
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
        )
        next_cursor = str(tasks[-1].id) if len(tasks) == limit else None
        return TaskPage(tasks=[TaskOut.of(t) for t in tasks], next_cursor=next_cursor)

    @get("/{task_id:str}", responses=_errors(404), summary="One task")
    async def get_task(self, tq: NamedDependency[TaskQueue], task_id: FromPath[str]) -> TaskOut:
        return TaskOut.of(await tq.get(parse_task_id(task_id)))

    @get(
        "/{task_id:str}/history",
        responses=_errors(404),
        summary="Every event of one task, oldest first",
    )
    async def get_history(
        self, tq: NamedDependency[TaskQueue], task_id: FromPath[str]
    ) -> list[EventOut]:
        return [EventOut.of(e) for e in await tq.history(parse_task_id(task_id))]

    @post(
        "/{task_id:str}/cancel",
        status_code=200,
        responses=_errors(404, 409),
        summary="Cancel a queued task",
    )
    async def cancel_task(self, tq: NamedDependency[TaskQueue], task_id: FromPath[str]) -> TaskOut:
        return TaskOut.of(await tq.cancel(parse_task_id(task_id)))

    @post(
        "/{task_id:str}/retry",
        status_code=200,
        responses=_errors(404, 409),
        summary="Put a failed or cancelled task back in its queue",
    )
    async def retry_task(self, tq: NamedDependency[TaskQueue], task_id: FromPath[str]) -> TaskOut:
        return TaskOut.of(await tq.retry(parse_task_id(task_id)))


@get(
    "/api/stats",
    security=SECURITY,
    responses=_errors(),
    tags=["tasks"],
    summary="Task counts, in total and per queue",
)
async def get_stats(tq: NamedDependency[TaskQueue]) -> Stats:
    return await tq.stats()
