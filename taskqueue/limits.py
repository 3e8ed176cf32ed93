"""Every bound a task, a filter or a queue setting must respect, and the
checks of arguments that are not tasks (filters, rate limits, queue names,
page sizes). The Python API and the REST schemas read them from here, so a
bound changes in one place.

What a single task may hold (text rules, payload nesting) is checked in
``taskqueue.validation``; turning a task into a row is ``taskqueue.enqueue``."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from taskqueue.durations import MAX_SECONDS, parse_duration
from taskqueue.errors import InvalidArgument, InvalidTask
from taskqueue.models import RateLimit, Status, TaskFilter
from taskqueue.validation import (
    MAX_PAYLOAD_DEPTH,
    as_task_id,
    queue_problem,
    text_problem,
    zoned_problem,
)

__all__ = [
    "DEFAULT_MAX_RESULT_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_QUEUE",
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_BULK",
    "MAX_CALLBACK_URL_LENGTH",
    "MAX_CRON_LENGTH",
    "MAX_DELAY_SECONDS",
    "MAX_EVERY_SECONDS",
    "MAX_KEY_LENGTH",
    "MAX_LIMIT",
    "MAX_NAME_LENGTH",
    "MAX_OFFSET",
    "MAX_PAGE_SIZE",
    "MAX_PAYLOAD_DEPTH",
    "MAX_PRIORITY",
    "MAX_QUEUE_LENGTH",
    "MAX_RESULT_WAIT_SECONDS",
    "MAX_RETRIES_LIMIT",
    "MAX_SCHEDULE_NAME_LENGTH",
    "MAX_TENANT_LENGTH",
    "MAX_TIMEOUT_SECONDS",
    "MAX_TTL_SECONDS",
    "MAX_TYPE_LENGTH",
    "SCHEDULE_NAME_PATTERN",
    "check_bulk",
    "check_concurrency",
    "check_filter",
    "check_filter_text",
    "check_list",
    "check_page",
    "check_rate",
    "check_retention",
    "check_tenant",
    "check_window",
    "queue_name",
]

DEFAULT_QUEUE: Final = "default"
DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_TIMEOUT_SECONDS: Final = 30.0

# Bounds that keep one producer from hurting everyone else.
MAX_NAME_LENGTH: Final = 200
MAX_TYPE_LENGTH: Final = 100
MAX_QUEUE_LENGTH: Final = 100
MAX_TENANT_LENGTH: Final = 64  # a tenant's name follows the queue names' rule (0013_tenants)
MAX_KEY_LENGTH: Final = 200
MAX_PRIORITY: Final = 1000
MAX_RETRIES_LIMIT: Final = 100
MAX_TIMEOUT_SECONDS: Final = 86400.0
MAX_PAGE_SIZE: Final = 1000
MAX_DELAY_SECONDS: Final = 10 * 365 * 86400.0
MAX_BULK: Final = 10_000  # tasks one bulk action changes in one statement
MAX_LIMIT: Final = 1_000_000  # the largest concurrency or rate limit
# Results, expiry and callbacks (README: "Results, expiry and callbacks").
MAX_TTL_SECONDS: Final = MAX_DELAY_SECONDS  # ttl_seconds; expires_at as far as run_at
MAX_CALLBACK_URL_LENGTH: Final = 2048
MAX_RESULT_WAIT_SECONDS: Final = 60  # GET /api/tasks/{id}/result?wait=
DEFAULT_MAX_RESULT_BYTES: Final = 1024 * 1024  # encoded result (TASKQUEUE_MAX_RESULT_BYTES)

# Schedules: the name is a path segment of the REST API.
SCHEDULE_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
MAX_SCHEDULE_NAME_LENGTH: Final = 200
MAX_CRON_LENGTH: Final = 200
MAX_EVERY_SECONDS: Final = 366 * 86400


def queue_name(queue: str) -> str:
    """``queue`` if a queue may have that name; else InvalidArgument("queue")."""
    problem = queue_problem(queue, max_length=MAX_QUEUE_LENGTH)
    if problem is not None:
        raise InvalidArgument("queue", problem)
    return queue


def check_tenant(tenant: object, field: str = "tenant") -> None:
    """A tenant's name follows the queue names' rule, at most MAX_TENANT_LENGTH long."""
    if tenant is not None and (problem := queue_problem(tenant, max_length=MAX_TENANT_LENGTH)):
        raise InvalidArgument(field, problem)


_STATUSES = tuple(status.value for status in Status)


def check_list(
    *,
    limit: object,
    status: object,
    queue: object,
    task_type: object,
    created_after: datetime | None,
    created_before: datetime | None,
    cursor: object,
    tenant: object,
) -> uuid.UUID | None:
    """The filters of a task list (TaskQueue.list), checked; returns the
    cursor as a task id. Raises InvalidTask naming the argument."""
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidTask("limit", f"an integer from 1 to {MAX_PAGE_SIZE}")
    if status is not None and status not in _STATUSES:
        raise InvalidTask("status", f"one of {', '.join(_STATUSES)}")
    if queue is not None and (problem := queue_problem(queue, max_length=MAX_QUEUE_LENGTH)):
        raise InvalidTask("queue", problem)
    if task_type is not None and (
        problem := text_problem(task_type, max_length=MAX_TYPE_LENGTH, min_length=1)
    ):
        raise InvalidTask("type", problem)
    if tenant is not None and (problem := queue_problem(tenant, max_length=MAX_TENANT_LENGTH)):
        raise InvalidTask("tenant", problem)
    for field, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and (problem := zoned_problem(value)):
            raise InvalidTask(field, problem)
    if cursor is None:
        return None
    before = as_task_id(cursor)
    if before is None:
        raise InvalidTask("cursor", "not a task id")
    return before


def check_filter_text(queue: object, task_type: object, prefix: str = "") -> None:
    if queue is not None and (problem := queue_problem(queue, max_length=MAX_QUEUE_LENGTH)):
        raise InvalidArgument(f"{prefix}queue", problem)
    if task_type is not None and (
        problem := text_problem(task_type, max_length=MAX_TYPE_LENGTH, min_length=1)
    ):
        raise InvalidArgument(f"{prefix}type", problem)


def check_filter(where: TaskFilter) -> None:
    """A bulk action's filter names something: an empty one (or an empty
    string in it) would quietly match every task."""
    if type(where) is not TaskFilter:
        raise InvalidArgument("filter", "must be a TaskFilter")
    fields = (where.status, where.queue, where.type, where.error, where.created_before)
    if all(value is None for value in (*fields, where.tenant)):
        raise InvalidArgument(
            "filter",
            "name at least one of status, queue, type, error, created_before or tenant "
            "(an empty filter would match every task)",
        )
    check_filter_text(where.queue, where.type, "filter.")
    check_tenant(where.tenant, "filter.tenant")
    error = where.error
    if error is not None and (type(error) is not str or not error or "\x00" in error):
        raise InvalidArgument(
            "filter.error", "a failure group's error, as failures() shows it (not empty, no NUL)"
        )
    if where.created_before is not None and (problem := zoned_problem(where.created_before)):
        raise InvalidArgument("filter.created_before", problem)


def check_bulk(ids: Any, where: TaskFilter | None, after: object, limit: object) -> dict[str, Any]:
    """Check a bulk action's selection; returns what was asked, for the
    operator log."""
    if (ids is None) == (where is None):
        raise InvalidArgument("ids", "give ids or a filter, not both and not neither")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BULK:
        raise InvalidArgument("limit", f"an integer from 1 to {MAX_BULK}")
    asked: dict[str, Any] = {"limit": limit}
    if ids is not None:
        if len(ids) > MAX_BULK:
            raise InvalidArgument("ids", f"at most {MAX_BULK} per call")
        asked["ids"] = len(ids)
    else:
        assert where is not None
        check_filter(where)
        asked["filter"] = msgspec.to_builtins(where)
    if after is not None:
        asked["after"] = str(after)
    return asked


def check_rate(rate: RateLimit) -> None:
    if isinstance(rate.limit, bool) or not isinstance(rate.limit, int):
        raise InvalidArgument("rate_limit.limit", "must be an integer")
    if not 1 <= rate.limit <= MAX_LIMIT:
        raise InvalidArgument("rate_limit.limit", f"must be between 1 and {MAX_LIMIT}")
    period = rate.period_seconds
    if isinstance(period, bool) or not isinstance(period, int | float):
        raise InvalidArgument("rate_limit.period_seconds", "must be a number")
    if not (math.isfinite(period) and 0.001 <= period <= 86400 * 7):
        raise InvalidArgument("rate_limit.period_seconds", "must be > 0 and at most 7 days")


def check_concurrency(concurrency: object, field: str = "concurrency_limit") -> None:
    if concurrency is not None and (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_LIMIT
    ):
        raise InvalidArgument(field, f"an integer from 1 to {MAX_LIMIT}, or null")


def check_page(limit: object, error: Callable[[str, str], Exception] = InvalidArgument) -> None:
    """A page of 1 to MAX_PAGE_SIZE rows; ``error`` is what to raise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise error("limit", f"must be between 1 and {MAX_PAGE_SIZE}")


MAX_OFFSET: Final = 1_000_000


def check_window(offset: object, limit: object) -> None:
    """A page by offset: 0 to MAX_OFFSET rows skipped, then ``limit`` rows
    (None: all the rest)."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidArgument("offset", f"must be between 0 and {MAX_OFFSET}")
    if limit is not None:
        check_page(limit)


def check_retention(field: str, value: object) -> timedelta | None:
    """A queue's retention for one state (``field`` names it): a duration
    such as ``12h`` or a timedelta, above 0 and at most 100 years; None goes
    back to the default."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise InvalidArgument(field, str(exc)) from None
    if isinstance(value, timedelta) and 0 < value.total_seconds() <= MAX_SECONDS:
        return value
    raise InvalidArgument(field, "a duration such as 90s, 15m, 12h, 7d or 2w, or null")
