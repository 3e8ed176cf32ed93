"""/api/workers: the worker registry."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency

from taskqueue.api.openapi import SECURITY, error_responses
from taskqueue.api.paging import PAGE_DESCRIPTION, PAGE_PARAMETERS, Limit, Offset, next_page
from taskqueue.client import TaskQueue
from taskqueue.limits import MAX_PAGE_SIZE
from taskqueue.models import WorkerInfo


@get(
    "/api/workers",
    security=SECURITY,
    responses=error_responses(422),
    tags=["workers"],
    summary="Every registered worker: running, stopping, stopped or lost",
    description=(
        "A worker is lost when it has not stopped but its heartbeat is more than three "
        "of its intervals old; rows of workers gone for a day are pruned. Newest first. "
        + PAGE_DESCRIPTION
    ),
    opt={"query_parameters": PAGE_PARAMETERS},
)
async def get_workers(
    request: Request[Any, Any, Any],
    tq: NamedDependency[TaskQueue],
    limit: Limit = MAX_PAGE_SIZE,
    offset: Offset = 0,
) -> Response[list[WorkerInfo]]:
    workers = await tq.workers(offset=offset, limit=limit)
    return Response(workers, headers=next_page(request, offset, limit, len(workers)))
