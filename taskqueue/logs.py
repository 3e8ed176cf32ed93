"""The old home of ``taskqueue.observability.logs``, kept so that existing
imports go on working (the same objects: ``running_task`` is one variable)."""

from taskqueue.observability.logs import (
    MASK,
    MIN_SECRET_LENGTH,
    TASK_FIELDS,
    ConsoleFormatter,
    JsonFormatter,
    Redactor,
    TaskContextFilter,
    configure,
    configure_from,
    running_task,
    secrets_of,
)

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "TASK_FIELDS",
    "ConsoleFormatter",
    "JsonFormatter",
    "Redactor",
    "TaskContextFilter",
    "configure",
    "configure_from",
    "running_task",
    "secrets_of",
]
