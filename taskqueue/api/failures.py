"""/api/failures: the dead-letter view, failed tasks grouped by error."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from taskqueue.api.openapi import SECURITY, error_responses
from taskqueue.api.paging import PAGE_DESCRIPTION, PAGE_PARAMETERS, Limit, Offset, next_page
from taskqueue.client import TaskQueue
from taskqueue.limits import MAX_TENANT_LENGTH
from taskqueue.models import FailureGroup
from taskqueue.validation import TENANT_PATTERN


@get(
    "/api/failures",
    security=SECURITY,
    responses=error_responses(422),
    tags=["tasks"],
    summary="Failed tasks grouped by queue, type and error, biggest groups first",
    description=(
        "The error is the first line of last_error with ids, numbers and quoted values "
        "masked (<id>, <n>, <value>), so that one fault is one group. Pass a group's "
        "queue, type and error as the filter of POST /api/tasks/retry (or cancel, delete) "
        "to act on the whole group. " + PAGE_DESCRIPTION
    ),
    opt={"query_parameters": ("queue", "type", "since", "tenant", *PAGE_PARAMETERS)},
)
async def get_failures(
    request: Request[Any, Any, Any],
    tq: NamedDependency[TaskQueue],
    queue: FromQuery[str | None] = None,
    task_type: Annotated[str | None, QueryParameter(name="type")] = None,
    since: FromQuery[datetime | None] = None,
    limit: Limit = 100,
    offset: Offset = 0,
    tenant: Annotated[
        str | None, QueryParameter(pattern=TENANT_PATTERN, max_length=MAX_TENANT_LENGTH)
    ] = None,
) -> Response[list[FailureGroup]]:
    groups = await tq.failures(
        queue=queue, type=task_type, since=since, limit=limit, offset=offset, tenant=tenant
    )
    return Response(groups, headers=next_page(request, offset, limit, len(groups)))
