"""One JSON error shape for every failure, and the status code for each kind.

No stack trace ever reaches a client: anything unexpected is logged here and
answered with a plain 500; a database that cannot be reached is a 503. The
dashboard shows the same status and message as a page."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)

from taskqueue.errors import (
    InvalidArgument,
    InvalidGraph,
    InvalidTask,
    QueueNotFound,
    QuotaExceeded,
    TaskNotFound,
    TaskStateConflict,
    TenantForbidden,
    UnknownTaskType,
    WorkflowNotFound,
    locate_validation_error,
)
from taskqueue.retrying import is_transient

# The API's logger name, which operators' log filters already know.
logger = logging.getLogger("taskqueue.api")


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error, whatever the endpoint: a machine-readable ``error`` code, a
    message for people, and the offending ``field`` when there is one."""

    status: int
    error: str
    message: str
    field: str | None = None
    known_types: list[str] | None = None
    refs: list[str] | None = None  # the workflow tasks at fault (POST /api/workflows)


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.body = ErrorBody(status=status, error=error, message=message, field=field)


def error_response(body: ErrorBody, headers: dict[str, str] | None = None) -> Response[ErrorBody]:
    return Response(content=body, status_code=body.status, headers=headers)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    match exc:
        case ApiError():
            return error_response(exc.body)
        case msgspec.ValidationError():
            field, message = locate_validation_error(str(exc))
            return error_response(
                ErrorBody(
                    status=422, error="invalid_field", message=f"{field}: {message}", field=field
                )
            )
        case msgspec.DecodeError():  # after ValidationError, its subclass
            return error_response(
                ErrorBody(status=400, error="malformed_json", message=f"malformed JSON: {exc}")
            )
        case UnknownTaskType():
            return error_response(
                ErrorBody(
                    status=422,
                    error="unknown_task_type",
                    message=str(exc),
                    field=exc.field,
                    known_types=exc.known,
                )
            )
        case InvalidGraph():
            return error_response(
                ErrorBody(
                    status=422,
                    error="invalid_workflow",
                    message=str(exc),
                    field=exc.field,
                    refs=exc.refs,
                )
            )
        case InvalidTask():
            return error_response(
                ErrorBody(status=422, error="invalid_field", message=str(exc), field=exc.field)
            )
        case InvalidArgument():
            return error_response(
                ErrorBody(status=422, error="invalid_field", message=str(exc), field=exc.field)
            )
        case QueueNotFound():
            return error_response(ErrorBody(status=404, error="not_found", message=str(exc)))
        case TaskNotFound() | WorkflowNotFound():
            return error_response(ErrorBody(status=404, error="not_found", message=str(exc)))
        case QuotaExceeded():
            return error_response(
                ErrorBody(status=429, error="quota_exceeded", message=str(exc)),
                headers={"Retry-After": str(exc.retry_after)},
            )
        case TenantForbidden():
            return error_response(ErrorBody(status=403, error="forbidden", message=str(exc)))
        case TaskStateConflict():
            return error_response(ErrorBody(status=409, error="conflict", message=str(exc)))
        case ValidationException():
            problems = exc.extra if isinstance(exc.extra, list) else []
            first = problems[0] if problems and isinstance(problems[0], dict) else {}
            key = str(first.get("key", ""))
            message = str(first.get("message", exc.detail))
            return error_response(
                ErrorBody(
                    status=422,
                    error="invalid_field",
                    message=f"{key}: {message}" if key else message,
                    field=key or None,
                )
            )
        case NotAuthorizedException():
            return error_response(
                ErrorBody(status=401, error="unauthorized", message=exc.detail),
                headers={"WWW-Authenticate": 'Bearer realm="taskqueue"'},
            )
        case PermissionDeniedException():
            return error_response(ErrorBody(status=403, error="forbidden", message=exc.detail))
        case HTTPException():
            return error_response(
                ErrorBody(
                    status=exc.status_code,
                    error=_HTTP_CODES.get(exc.status_code, "http_error"),
                    message=exc.detail,
                ),
                headers=exc.headers,  # e.g. Allow on a 405
            )
    if database_unavailable(exc):
        logger.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            ErrorBody(
                status=503,
                error="database_unavailable",
                message="the database cannot be reached; nothing was changed; retry later",
            ),
            headers={"Retry-After": "1"},
        )
    # The path as a repr: decoded, it may hold newlines and NULs that would
    # forge log lines.
    logger.exception("unexpected error on %s %r", request.method, request.url.path[:200])
    return error_response(ErrorBody(status=500, error="internal", message="internal server error"))


def database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached (or not in time): nobody's input is at fault."""
    unreachable = (
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        asyncio.TimeoutError,
    )
    return isinstance(exc, unreachable) or (
        is_transient(exc) and not isinstance(exc, asyncpg.PostgresError)
    )


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    421: "misdirected_request",
    431: "request_header_fields_too_large",
    429: "too_many_requests",
}
