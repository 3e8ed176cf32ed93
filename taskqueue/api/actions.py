"""/api/actions: the operator log (pause, resume, limits, bulk actions,
cancels and retries: who, when, what)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from taskqueue.api.openapi import SECURITY, error_responses
from taskqueue.client import TaskQueue
from taskqueue.limits import MAX_PAGE_SIZE
from taskqueue.models import OperatorAction


@get(
    "/api/actions",
    security=SECURITY,
    responses=error_responses(422),
    tags=["operations"],
    summary="The operator log, newest first",
    description="Pass the last id of a page as `before` for the next one.",
    opt={"query_parameters": ("before", "limit")},
)
async def get_actions(
    tq: NamedDependency[TaskQueue],
    before: Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> list[OperatorAction]:
    return await tq.actions(before=before, limit=limit)
