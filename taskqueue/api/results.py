"""GET /api/tasks/{id}/result: a task's outcome, waiting for it if asked.

Waiters cost the database nothing while they wait: the process holds one
LISTEN (``taskqueue.results.ResultWaiters``, in ``app.state``) and each
waiter reads the row once after subscribing and once when woken."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from taskqueue.api.openapi import SECURITY, error_responses
from taskqueue.api.tasks import parse_task_id
from taskqueue.client import TaskQueue
from taskqueue.errors import TaskNotFound
from taskqueue.limits import MAX_RESULT_WAIT_SECONDS
from taskqueue.models import Status, Task
from taskqueue.results import TERMINAL, ResultWaiters


class ResultOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    status: Status
    result: Any  # what the handler returned (succeeded), else null
    error: str | None  # why it failed or expired, else null
    attempts: int


def _out(task: Task) -> ResultOut:
    return ResultOut(
        id=task.id,
        status=task.status,
        result=task.result if task.status is Status.SUCCEEDED else None,
        error=None if task.status is Status.SUCCEEDED else task.last_error,
        attempts=task.attempts,
    )


@get(
    "/api/tasks/{task_id:str}/result",
    security=SECURITY,
    responses=error_responses(404, 422),
    tags=["tasks"],
    summary="A task's outcome; with ?wait=SECONDS, as soon as it has one",
    description=(
        "200 `{id, status, result, error, attempts}` once the task has ended (succeeded, "
        "failed, cancelled or expired); 202 with the same shape and the current status when "
        f"it has not ended within `wait` seconds (0 to {MAX_RESULT_WAIT_SECONDS}, default 0: "
        "answer at once). Waiting holds no database connection and polls nothing: the API "
        "process listens once for every waiter."
    ),
    status_code=200,
    opt={"query_parameters": ("wait",)},
)
async def get_result(
    state: State,
    tq: NamedDependency[TaskQueue],
    task_id: FromPath[str],
    wait: Annotated[
        float,
        QueryParameter(
            ge=0, le=MAX_RESULT_WAIT_SECONDS, description="seconds to wait for the outcome"
        ),
    ] = 0,
) -> Response[ResultOut]:
    task_uuid = parse_task_id(task_id)
    waiters: ResultWaiters = state.result_waiters

    async def read() -> Task | None:
        try:
            return await tq.get(task_uuid)
        except TaskNotFound:
            return None

    task = await read() if wait == 0 else await waiters.wait(task_uuid, wait, read)
    if task is None:
        raise TaskNotFound(task_uuid)
    return Response(_out(task), status_code=200 if task.status in TERMINAL else 202)
