"""POST /api/tasks/retry, /cancel and /delete: one action on many tasks, by
ids or by a filter, one statement per chunk."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency

from taskqueue.api.openapi import SECURITY, error_responses, with_body
from taskqueue.client import TaskQueue
from taskqueue.http.auth import actor_of
from taskqueue.http.body import decode_body
from taskqueue.limits import MAX_BULK
from taskqueue.models import BulkResult, TaskFilter


class BulkRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``ids`` or ``filter`` (not both); ``after``: the ``next`` of the
    previous chunk."""

    ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=MAX_BULK)] | None = None
    filter: TaskFilter | None = None
    after: uuid.UUID | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_BULK)] = MAX_BULK


_decode_bulk = msgspec.json.Decoder(BulkRequest).decode
# 10,000 ids as JSON text take about 400 KB: more than the API's usual body
# limit, which is sized for tasks.
BULK_BODY_BYTES = 1024 * 1024
_DESCRIPTION = (
    "Give `ids` (up to 10,000) or a `filter` ({status, queue, type, error, created_before}, "
    "every given field must match; `error` is a group from GET /api/failures). One "
    "statement changes up to `limit` tasks (default and most 10,000), each with its "
    "event; `next` is not null when more may match: send it back as `after`. `matched` "
    "counts the tasks found, `changed` those the action applied to."
)


# Every bulk action takes the same body and answers the same way.
_BULK_ACTION: dict[str, Any] = {
    "status_code": 200,
    "operation_class": with_body(BulkRequest, "which tasks"),
    "responses": error_responses(400, 413, 415, 422),
    "request_max_body_size": BULK_BODY_BYTES,
    "description": _DESCRIPTION,
}


class BulkController(Controller):
    path = "/api/tasks"
    tags = ["tasks"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = SECURITY

    @post("/retry", summary="Put failed and cancelled tasks back in their queues", **_BULK_ACTION)
    async def retry_many(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue]
    ) -> BulkResult:
        return await _apply(request, tq.retry_many)

    @post(
        "/cancel",
        summary="Cancel queued and running tasks (their workers stop the handlers)",
        **_BULK_ACTION,
    )
    async def cancel_many(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue]
    ) -> BulkResult:
        return await _apply(request, tq.cancel_many)

    @post(
        "/delete",
        summary="Delete finished tasks (their history stays, with task_deleted)",
        **_BULK_ACTION,
    )
    async def delete_many(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue]
    ) -> BulkResult:
        return await _apply(request, tq.delete_many)


async def _apply(
    request: Request[Any, Any, State], action: Callable[..., Awaitable[BulkResult]]
) -> BulkResult:
    """One chunk of a bulk action, as the request's body asks."""
    body = decode_body(_decode_bulk, await request.body(), envelope=2)
    return await action(
        body.ids, where=body.filter, after=body.after, limit=body.limit, actor=actor_of(request)
    )
