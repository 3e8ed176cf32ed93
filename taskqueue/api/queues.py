"""/api/queues: each queue's settings and counts; pause, resume, limits and
retention.
A queue without settings is unpaused and unlimited; PATCH on a queue that
has none yet creates them (a queue exists once anything names it)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath

from taskqueue.api.openapi import SECURITY, error_responses, with_body
from taskqueue.api.paging import PAGE_DESCRIPTION, PAGE_PARAMETERS, Limit, Offset, next_page
from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidArgument
from taskqueue.http.auth import actor_of
from taskqueue.http.body import decode_body
from taskqueue.limits import MAX_LIMIT, MAX_PAGE_SIZE, check_retention
from taskqueue.models import QueueInfo, RateLimit


class RateLimitIn(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]
    period_seconds: Annotated[float, msgspec.Meta(ge=0.001, le=7 * 86400)]


class QueueLimits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A field left out keeps its value; null removes the limit, or sets a
    retention back to the default."""

    concurrency_limit: (
        Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    rate_limit: RateLimitIn | msgspec.UnsetType | None = msgspec.UNSET
    # At most this many running tasks per concurrency_key (and tenant).
    per_key_concurrency: (
        Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    # Durations such as "12h" or "7d" (checked by tq.queues.set_retention).
    retain_succeeded: str | msgspec.UnsetType | None = msgspec.UNSET
    retain_failed: str | msgspec.UnsetType | None = msgspec.UNSET
    retain_cancelled: str | msgspec.UnsetType | None = msgspec.UNSET


_decode_limits = msgspec.json.Decoder(QueueLimits).decode


class QueueController(Controller):
    path = "/api/queues"
    tags = ["queues"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = SECURITY

    @get(
        "/",
        responses=error_responses(422),
        summary="Every queue: settings and counts, by name",
        description=PAGE_DESCRIPTION,
        opt={"query_parameters": PAGE_PARAMETERS},
    )
    async def list_queues(
        self,
        request: Request[Any, Any, State],
        tq: NamedDependency[TaskQueue],
        limit: Limit = MAX_PAGE_SIZE,
        offset: Offset = 0,
    ) -> Response[list[QueueInfo]]:
        queues = await tq.queues(offset=offset, limit=limit)
        return Response(queues, headers=next_page(request, offset, limit, len(queues)))

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
        operation_class=with_body(QueueLimits, "the limits and retention to change"),
        responses=error_responses(400, 413, 415, 422),
        summary="Set or clear a queue's concurrency and rate limits and its retention",
        description=(
            "At most concurrency_limit of the queue's tasks run at once, and at most "
            "rate_limit.limit start per rolling rate_limit.period_seconds, across every "
            "worker and host; at most per_key_concurrency tasks with the same "
            "concurrency_key run at once. retain_succeeded, retain_failed and "
            "retain_cancelled keep the queue's finished tasks that long (durations such "
            "as 90s, 12h, 7d, 2w) "
            "before workers prune them. Leave a field out to keep it; null removes the "
            "limit, or sets the retention back to the default."
        ),
    )
    async def set_limits(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue], name: FromPath[str]
    ) -> QueueInfo:
        body = decode_body(_decode_limits, await request.body(), envelope=1)
        actor = actor_of(request)
        retention = {
            state: getattr(body, f"retain_{state}")
            for state in ("succeeded", "failed", "cancelled")
            if getattr(body, f"retain_{state}") is not msgspec.UNSET
        }
        if retention:
            # Checked in full before anything changes, so a bad duration
            # leaves the limits asked for in the same body unchanged too.
            for state, value in retention.items():
                check_retention(f"retain_{state}", value)
        changes: dict[str, Any] = {}
        if body.concurrency_limit is not msgspec.UNSET:
            changes["concurrency"] = body.concurrency_limit
        if body.per_key_concurrency is not msgspec.UNSET:
            changes["per_key"] = body.per_key_concurrency
        if body.rate_limit is not msgspec.UNSET:
            rate = body.rate_limit
            changes["rate"] = (
                None
                if rate is None
                else RateLimit(limit=rate.limit, period_seconds=rate.period_seconds)
            )
        if retention or not changes:
            if changes:
                await tq.set_limits(name, actor=actor, **changes)
            if not retention:
                raise InvalidArgument(
                    "body",
                    "give concurrency_limit, rate_limit, per_key_concurrency, "
                    "retain_succeeded, retain_failed or retain_cancelled",
                )
            return await tq.queues.set_retention(name, actor=actor, **retention)
        return await tq.set_limits(name, actor=actor, **changes)
