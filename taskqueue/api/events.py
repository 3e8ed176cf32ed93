"""GET /api/events: the live event stream (Server-Sent Events)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.params import FromQuery, HeaderParameter, QueryParameter
from litestar.response import Stream

from taskqueue.api.openapi import SECURITY, error_responses
from taskqueue.api.stream import EventHub, Filters
from taskqueue.errors import TenantForbidden
from taskqueue.http.auth import expires_of, session_alive, tenant_of
from taskqueue.http.errors import ApiError
from taskqueue.limits import MAX_TENANT_LENGTH
from taskqueue.validation import TENANT_PATTERN


@get(
    "/api/events",
    security=SECURITY,
    responses=error_responses(422),
    tags=["events"],
    summary="Live events (text/event-stream)",
    description=(
        "One SSE event per task event: `event: task`, `id:` the event id, `data:` "
        '{"task_id", "event_type", "status", "queue", "type", "attempt", "worker_id", '
        '"at"}; `event: queue` / `event: action` for operator actions and `event: worker` '
        "when a worker starts, stops, is lost or its load changes. Filter with queue, type "
        "or task_id (an operator also by tenant; a tenant's token sees only its tasks' events "
        "and no queue, action or worker events). Reconnecting with the Last-Event-ID "
        "header (browsers do it by themselves) resumes after that event with no gap. "
        "A comment every 15 s keeps idle connections open. Every stream of one API "
        "process shares one reading of the database. When the JWT or dashboard session "
        "that opened the stream expires (or the session signs out), an `event: expired` "
        "is sent and the stream ends."
    ),
    opt={"query_parameters": ("queue", "type", "task_id", "tenant")},
    media_type="text/event-stream",
)
async def get_events(
    request: Request[Any, Any, State],
    state: State,
    queue: FromQuery[str | None] = None,
    task_type: Annotated[str | None, QueryParameter(name="type")] = None,
    task_id: FromQuery[uuid.UUID | None] = None,
    tenant: Annotated[
        str | None, QueryParameter(max_length=MAX_TENANT_LENGTH, pattern=TENANT_PATTERN)
    ] = None,
    last_event_id: Annotated[str | None, HeaderParameter(name="last-event-id")] = None,
) -> Stream:
    resume: int | None = None
    if last_event_id:
        try:
            resume = int(last_event_id)
        except ValueError:
            raise ApiError(
                422, "invalid_field", "Last-Event-ID: an event id", "last-event-id"
            ) from None
        if resume < 0:
            raise ApiError(422, "invalid_field", "Last-Event-ID: an event id", "last-event-id")
    hub: EventHub = state.event_hub
    own = tenant_of(request)
    if own is not None and tenant not in (None, own):
        raise TenantForbidden(f"this token acts for tenant {own!r} only")
    filters = Filters(queue=queue, task_type=task_type, task_id=task_id, tenant=own or tenant)
    return Stream(
        hub.stream(
            filters,
            last_event_id=resume,
            until=expires_of(request),
            alive=session_alive(request),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
