"""/api/tenants and /api/tenants/{name}: tenants' quotas, their rate limits
on starts and what they use (an operator's; a tenant's own token may read
its own)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, patch
from litestar.datastructures import State
from litestar.params import FromPath

from taskqueue.api.openapi import SECURITY, error_responses, with_body
from taskqueue.api.paging import PAGE_DESCRIPTION, PAGE_PARAMETERS, Limit, Offset, next_page
from taskqueue.api.queues import RateLimitIn
from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidArgument
from taskqueue.http.auth import actor_of
from taskqueue.http.body import decode_body
from taskqueue.limits import MAX_LIMIT, MAX_PAGE_SIZE
from taskqueue.models import RateLimit
from taskqueue.store import TenantUsage


class TenantLimits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A field left out keeps its value; null removes the limit."""

    # At most this many unfinished tasks (waiting, queued, running); beyond
    # it enqueueing answers 429 with Retry-After and a batch is refused whole.
    max_queued: Annotated[int, msgspec.Meta(ge=0, le=MAX_LIMIT)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    # At most rate_limit.limit of its tasks start per rolling
    # rate_limit.period_seconds, across every queue: the shape of a queue's
    # rate_limit (PATCH /api/queues/{name}), so one client type serves both.
    rate_limit: RateLimitIn | msgspec.UnsetType | None = msgspec.UNSET


_decode_limits = msgspec.json.Decoder(TenantLimits).decode


class TenantController(Controller):
    path = "/api/tenants"
    tags = ["tenants"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = SECURITY

    @get(
        "/",
        responses=error_responses(403, 422),
        summary="Every tenant counted (it has or had a quota) or rate-limited, by name",
        description=PAGE_DESCRIPTION,
        opt={"query_parameters": PAGE_PARAMETERS},
    )
    async def list_tenants(
        self,
        request: Request[Any, Any, State],
        state: State,
        limit: Limit = MAX_PAGE_SIZE,
        offset: Offset = 0,
    ) -> Response[list[TenantUsage]]:
        # An operator's alone: http.tenancy lets a tenant's token reach its own name only.
        tq: TaskQueue = state.tq
        tenants = await tq.tenants(offset=offset, limit=limit)
        return Response(tenants, headers=next_page(request, offset, limit, len(tenants)))

    @get(
        "/{name:str}",
        responses=error_responses(403, 422),
        summary="A tenant's quota, rate limit and use",
        description=(
            "unfinished counts its waiting, queued and running tasks; null for a tenant "
            "that never had a quota (it is not counted). recent_starts counts its tasks "
            "started within the last rate_limit.period_seconds; null without a rate limit."
        ),
    )
    async def get_tenant(self, state: State, name: FromPath[str]) -> TenantUsage:
        # The app's own TaskQueue: the auth middleware lets a tenant's token
        # reach its own name alone.
        tq: TaskQueue = state.tq
        return await tq.tenants.get(name)

    @patch(
        "/{name:str}",
        operation_class=with_body(TenantLimits, "the limits to change"),
        responses=error_responses(400, 403, 413, 415, 422),
        summary="Set or clear a tenant's quota and rate limit on starts",
        description=(
            "max_queued: at most that many of the tenant's tasks unfinished (waiting, "
            "queued or running). rate_limit: at most rate_limit.limit of its tasks start "
            "per rolling rate_limit.period_seconds, across every queue, worker and host. "
            "null removes a limit, a field left out keeps it."
        ),
    )
    async def set_tenant(
        self, request: Request[Any, Any, State], state: State, name: FromPath[str]
    ) -> TenantUsage:
        body = decode_body(_decode_limits, await request.body(), envelope=1)
        if body.max_queued is msgspec.UNSET and body.rate_limit is msgspec.UNSET:
            raise InvalidArgument(
                "body", "give max_queued, rate_limit or both (null removes a limit)"
            )
        changes: dict[str, Any] = {}
        if body.max_queued is not msgspec.UNSET:
            changes["max_queued"] = body.max_queued
        if body.rate_limit is not msgspec.UNSET:
            rate = body.rate_limit
            changes["rate"] = (
                None
                if rate is None
                else RateLimit(limit=rate.limit, period_seconds=rate.period_seconds)
            )
        tq: TaskQueue = state.tq
        return await tq.tenants.set_limits(name, actor=actor_of(request), **changes)
