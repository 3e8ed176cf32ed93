"""/api/workers: the worker registry."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from taskqueue.api.openapi import SECURITY, error_responses
from taskqueue.client import TaskQueue
from taskqueue.models import WorkerInfo


@get(
    "/api/workers",
    security=SECURITY,
    responses=error_responses(),
    tags=["workers"],
    summary="Every registered worker: running, stopping, stopped or lost",
    description=(
        "A worker is lost when it has not stopped but its heartbeat is more than three "
        "of its intervals old; rows of workers gone for a day are pruned."
    ),
)
async def get_workers(tq: NamedDependency[TaskQueue]) -> list[WorkerInfo]:
    return await tq.workers()
