"""/api/schedules: recurring tasks defined at run time, and what became of
their slots."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter

from taskqueue.api.openapi import SECURITY, with_body
from taskqueue.api.schemas import TaskOut
from taskqueue.client import TaskQueue
from taskqueue.http.body import decode_body
from taskqueue.http.errors import ErrorBody, error_response
from taskqueue.limits import (
    MAX_PRIORITY,
    MAX_QUEUE_LENGTH,
    MAX_RETRIES_LIMIT,
    MAX_TIMEOUT_SECONDS,
)
from taskqueue.models import (
    CatchUp,
    FireTime,
    NewSchedule,
    Overlap,
    Schedule,
    ScheduleFire,
)
from taskqueue.schedules import (
    MAX_CRON_LENGTH,
    MAX_EVERY_SECONDS,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    ScheduleConflict,
    ScheduleNotFound,
)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN)]
Cron = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CRON_LENGTH)]
EverySeconds = Annotated[int, msgspec.Meta(ge=1, le=MAX_EVERY_SECONDS)]
Zone = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Type = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Queue = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUEUE_LENGTH)]
Priority = Annotated[int, msgspec.Meta(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]
Retries = Annotated[int, msgspec.Meta(ge=0, le=MAX_RETRIES_LIMIT)]
Timeout = Annotated[float, msgspec.Meta(gt=0, le=MAX_TIMEOUT_SECONDS)]
Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class CreateSchedule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A recurring task: ``cron`` (5 fields, 6 with leading seconds, or an
    @alias, in ``timezone``) or ``every_seconds``. Unset task settings take
    the task type's defaults."""

    name: Name
    type: Type
    cron: Cron | None = None
    every_seconds: EverySeconds | None = None
    timezone: Zone = "UTC"
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    queue: Queue | None = None
    priority: Priority | None = None
    max_retries: Retries | None = None
    timeout_seconds: Timeout | None = None
    catch_up: CatchUp = CatchUp.LATEST
    overlap: Overlap = Overlap.ALLOW

    def to_new_schedule(self) -> NewSchedule:
        return NewSchedule(**msgspec.structs.asdict(self))


class UpdateSchedule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The fields to change; the others stay. Giving ``cron`` drops
    ``every_seconds`` and the other way round; ``null`` task settings mean
    the task type's default."""

    cron: Cron | Unset | None = UNSET
    every_seconds: EverySeconds | Unset | None = UNSET
    timezone: Zone | Unset = UNSET
    type: Type | Unset = UNSET
    payload: dict[str, Any] | Unset = UNSET
    queue: Queue | Unset | None = UNSET
    priority: Priority | Unset | None = UNSET
    max_retries: Retries | Unset | None = UNSET
    timeout_seconds: Timeout | Unset | None = UNSET
    catch_up: CatchUp | Unset = UNSET
    overlap: Overlap | Unset = UNSET

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in msgspec.structs.asdict(self).items() if v is not UNSET}


class SchedulePage(msgspec.Struct, kw_only=True):
    schedules: list[Schedule]
    next_cursor: str | None  # pass as ?cursor= for the next page; null on the last one


class ScheduleDetail(Schedule, kw_only=True):
    """A schedule, its next fire times and what became of its newest slots."""

    next_fires: list[FireTime]  # the next 5 slots after now, in its zone and in UTC
    recent_fires: list[ScheduleFire]  # the newest 10 ledger rows, newest first


_decode_create = msgspec.json.Decoder(CreateSchedule).decode
_decode_update = msgspec.json.Decoder(UpdateSchedule).decode


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    described = {
        400: "malformed JSON",
        401: "missing or invalid bearer token",
        403: "the token lacks the needed scope",
        404: "no such schedule",
        409: "the schedule's state does not allow this (see the message)",
        413: "request body over the size limit",
        422: "a field is invalid (a cron expression, a time zone, every_seconds, ...);"
        " `field` names it",
        503: "the database cannot be reached; nothing was changed",
    }
    return {
        code: ResponseSpec(data_container=ErrorBody, description=described[code])
        for code in (401, 403, 503, *codes)
    }


def _not_found(request: Request[Any, Any, Any], exc: ScheduleNotFound) -> Response[ErrorBody]:
    return error_response(ErrorBody(status=404, error="not_found", message=str(exc)))


def _conflict(request: Request[Any, Any, Any], exc: ScheduleConflict) -> Response[ErrorBody]:
    return error_response(ErrorBody(status=409, error="conflict", message=str(exc)))


class ScheduleController(Controller):
    path = "/api/schedules"
    tags = ["schedules"]  # noqa: RUF012 - Litestar reads it as a class attribute
    security = SECURITY
    exception_handlers = {  # noqa: RUF012 - Litestar reads it as a class attribute
        ScheduleNotFound: _not_found,
        ScheduleConflict: _conflict,
    }

    @get(
        "/",
        responses=_errors(422),
        summary="List schedules by name",
        opt={"query_parameters": ("cursor", "limit")},
    )
    async def list_schedules(
        self,
        tq: NamedDependency[TaskQueue],
        cursor: Annotated[
            str | None,
            QueryParameter(
                description="next_cursor of the previous page",
                pattern=NAME_PATTERN,
                max_length=MAX_NAME_LENGTH,
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> SchedulePage:
        found = await tq.list_schedules(after=cursor, limit=limit)
        return SchedulePage(
            schedules=found, next_cursor=found[-1].name if len(found) == limit else None
        )

    @post(
        "/",
        operation_class=with_body(CreateSchedule, "the schedule to add"),
        responses=_errors(400, 409, 413, 422),
        summary="Add a schedule",
        description=(
            "201 with the schedule; its first slot is the first after now. "
            "409 when the name is taken."
        ),
    )
    async def create_schedule(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue]
    ) -> Response[Schedule]:
        body = decode_body(_decode_create, await request.body(), envelope=1)
        return Response(await tq.create_schedule(body.to_new_schedule()), status_code=201)

    @get(
        "/{name:str}",
        responses=_errors(404),
        summary="One schedule, its next 5 fire times and its last 10 fires",
    )
    async def get_schedule(
        self, tq: NamedDependency[TaskQueue], name: FromPath[str]
    ) -> ScheduleDetail:
        details = await tq.schedule_details(name)
        return ScheduleDetail(
            **msgspec.structs.asdict(details.schedule),
            next_fires=details.next_fires,
            recent_fires=details.recent_fires,
        )

    @patch(
        "/{name:str}",
        operation_class=with_body(UpdateSchedule, "the fields to change"),
        responses=_errors(400, 404, 409, 413, 422),
        summary="Change a schedule defined at run time",
        description=(
            "Its next slot moves only if cron, every_seconds or timezone changed. "
            "409 for a schedule defined in code: change the code."
        ),
    )
    async def update_schedule(
        self, request: Request[Any, Any, State], tq: NamedDependency[TaskQueue], name: FromPath[str]
    ) -> Schedule:
        body = decode_body(_decode_update, await request.body(), envelope=1)
        return await tq.update_schedule(name, **body.changes())

    @delete(
        "/{name:str}",
        responses=_errors(404),
        summary="Delete a schedule; the tasks it fired and their history stay",
    )
    async def delete_schedule(self, tq: NamedDependency[TaskQueue], name: FromPath[str]) -> None:
        await tq.delete_schedule(name)

    @post(
        "/{name:str}/pause",
        status_code=200,
        responses=_errors(404, 409),
        summary="Stop a schedule firing (409 if already paused)",
    )
    async def pause_schedule(self, tq: NamedDependency[TaskQueue], name: FromPath[str]) -> Schedule:
        return await tq.pause_schedule(name)

    @post(
        "/{name:str}/resume",
        status_code=200,
        responses=_errors(404, 409),
        summary="Fire again from the next slot after now (409 if not paused)",
    )
    async def resume_schedule(
        self, tq: NamedDependency[TaskQueue], name: FromPath[str]
    ) -> Schedule:
        return await tq.resume_schedule(name)

    @post(
        "/{name:str}/trigger",
        status_code=201,
        responses=_errors(404),
        summary="Enqueue one task of the schedule now, outside its slots",
    )
    async def trigger_schedule(
        self, tq: NamedDependency[TaskQueue], name: FromPath[str]
    ) -> TaskOut:
        return TaskOut.of(await tq.trigger_schedule(name))
