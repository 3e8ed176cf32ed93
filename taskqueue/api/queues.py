"""/api/queues: each queue's settings and counts; pause, resume and limits.
A queue without settings is unpaused and unlimited; PATCH on a queue that
has none yet creates them (a queue exists once anything names it)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath

from taskqueue.api.openapi import SECURITY, error_responses, with_body
from taskqueue.client import TaskQueue
from taskqueue.http.auth import actor_of
from taskqueue.http.body import decode_body
from taskqueue.limits import MAX_LIMIT
from taskqueue.models import QueueInfo, RateLimit


class RateLimitIn(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]
    period_seconds: Annotated[float, msgspec.Meta(ge=0.001, le=7 * 86400)]


class QueueLimits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A field left out keeps its value; null removes the limit."""

    concurrency_limit: (
        Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    rate_limit: RateLimitIn | msgspec.UnsetType | None = msgspec.UNSET


_decode_limits = msgspec.json.Decoder(QueueLimits).decode


class QueueController(Controller):
    path = "/api/queues"
    tags = ["queues"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = SECURITY

    @get("/", responses=error_responses(), summary="Every queue: settings and counts")
    async def list_queues(self, tq: NamedDependency[TaskQueue]) -> list[QueueInfo]:
        return await tq.queues()

    @get("/{name:str}", responses=error_responses(404), summary="One queue")
    async def get_queue(self, tq: NamedDependency[TaskQueue], name: FromPath[str]) -> QueueInfo:
        return await tq.queue(name)

    @post(
        "/{name:str}/pause",
        status_code=200,
        responses=error_responses(422),
        summary="Pause a queue: no worker claims its tasks (running ones finish)",
    )
    async def pause(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue], name: FromPath[str]
    ) -> QueueInfo:
        return await tq.pause(name, actor=actor_of(request))

    @post(
        "/{name:str}/resume",
        status_code=200,
        responses=error_responses(422),
        summary="Resume a paused queue",
    )
    async def resume(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue], name: FromPath[str]
    ) -> QueueInfo:
        return await tq.resume(name, actor=actor_of(request))

    @patch(
        "/{name:str}",
        operation_class=with_body(QueueLimits, "the limits to change"),
        responses=error_responses(400, 413, 415, 422),
        summary="Set or clear a queue's concurrency and rate limits",
        description=(
            "At most concurrency_limit of the queue's tasks run at once, and at most "
            "rate_limit.limit start per rolling rate_limit.period_seconds, across every "
            "worker and host. Leave a field out to keep it; null removes the limit."
        ),
    )
    async def set_limits(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue], name: FromPath[str]
    ) -> QueueInfo:
        body = decode_body(_decode_limits, await request.body(), envelope=1)
        changes: dict[str, Any] = {}
        if body.concurrency_limit is not msgspec.UNSET:
            changes["concurrency"] = body.concurrency_limit
        if body.rate_limit is not msgspec.UNSET:
            rate = body.rate_limit
            changes["rate"] = (
                None
                if rate is None
                else RateLimit(limit=rate.limit, period_seconds=rate.period_seconds)
            )
        return await tq.set_limits(name, actor=actor_of(request), **changes)
