"""Errors the Python API raises; the REST API maps each to one status code."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any


class TaskQueueError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidTask(TaskQueueError, ValueError):
    """A field of a new task is unacceptable; ``field`` names it (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidGraph(InvalidTask):
    """A workflow's graph is unacceptable (a cycle, an unknown or duplicate
    ref, an edge between two tenants' tasks, too many tasks); ``refs`` names
    the tasks at fault."""

    def __init__(self, message: str, refs: Iterable[str]) -> None:
        self.refs = sorted(set(refs))
        super().__init__("tasks", f"{message}: {', '.join(self.refs)}" if self.refs else message)


class UnknownTaskType(InvalidTask):
    def __init__(self, task_type: str, known: Iterable[str]) -> None:
        self.known = sorted(known)
        super().__init__(
            "type",
            f"unknown task type {task_type!r}; known types: {', '.join(self.known) or '(none)'}",
        )


class TaskNotFound(TaskQueueError, LookupError):
    def __init__(self, task_id: uuid.UUID | str) -> None:
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class WorkflowNotFound(TaskQueueError, LookupError):
    def __init__(self, workflow_id: uuid.UUID | str) -> None:
        super().__init__(f"workflow {workflow_id} not found")
        self.workflow_id = workflow_id


class QueueNotFound(TaskQueueError, LookupError):
    """No tasks, settings or workers under that queue name."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"queue {str(queue)[:64]!r} not found")
        self.queue = queue


class InvalidArgument(TaskQueueError, ValueError):
    """An argument of an operator action is unacceptable; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class QuotaExceeded(TaskQueueError):
    """A tenant is at its ``max_queued`` limit: nothing of the call was
    inserted (a batch is refused whole). Try again once some of its tasks
    have ended (the REST API answers 429 with Retry-After)."""

    retry_after = 1  # seconds: tasks end continuously; a client should not hammer

    def __init__(self, message: str) -> None:
        super().__init__(message)


class TenantForbidden(TaskQueueError, PermissionError):
    """A tenant-scoped caller named another tenant, or asked for what only
    an operator may do."""


class TaskStateConflict(TaskQueueError):
    """The requested change is not allowed from the task's current status."""

    def __init__(self, task_id: uuid.UUID, status: str, action: str, allowed: str) -> None:
        super().__init__(
            f"cannot {action} task {task_id}: it is {status}; only {allowed} tasks can"
        )
        self.task_id = task_id
        self.status = status
        self.action = action


class TaskFailed(TaskQueueError):
    """Waited for a task's result, and it failed or was cancelled (``task``
    says how: status, last_error)."""

    def __init__(self, task: Any) -> None:
        super().__init__(f"task {task.id} {task.status}: {task.last_error or 'no error recorded'}")
        self.task = task


class Permanent(TaskQueueError):
    """Raise from a handler when retrying cannot help (a request the receiver
    refuses, a record that no longer exists): the task fails now, whatever
    retries it has left. The message becomes the task's ``last_error``."""


class Snooze(TaskQueueError):
    """Raise from a handler to try again later without using up an attempt:
    the task goes back to ``queued`` due in ``seconds`` (event ``task_snoozed``)."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        if not 0 <= seconds <= 366 * 86400:
            raise ValueError("Snooze(seconds): between 0 and 366 days")
        super().__init__(reason or f"snoozed for {seconds:g}s")
        self.seconds = float(seconds)
        self.reason = reason


class ParentResultsNotRequested(Permanent):
    """A handler read ``ctx.parent_results`` but its type was registered
    without ``parent_results=True``: the claim reads parents' outcomes only
    for the types that ask (a read per claimed task otherwise). Retrying
    cannot help, so the task fails at once, saying how to fix it."""

    def __init__(self, task_type: str) -> None:
        super().__init__(
            f"task type {task_type!r} reads ctx.parent_results but was registered without"
            f" parent_results=True: register it with"
            f" @registry.task({task_type!r}, parent_results=True)"
        )
        self.task_type = task_type


def locate_validation_error(text: str, root: str = "") -> tuple[str, str]:
    """Split a msgspec validation message into (field path, message).

    "Expected `str`, got `int` - at `$.to`" -> ("to", "Expected `str`, got `int`");
    a missing or unknown field is named by the message itself."""
    message, sep, path = text.rpartition(" - at `")
    if not sep:
        message, path = text, "$"
    # msgspec names a value inside a dict "[...]", not by its key: name the dict.
    path = path.rstrip("`")[1:].lstrip(".").split("[...]", 1)[0]
    if message.startswith(("Object missing required field `", "Object contains unknown field `")):
        name = message.split("`")[1]
        path = f"{path}.{name}" if path else name
    field = ".".join(part for part in (root, path) if part).replace(".[", "[")
    return field or "body", message


class InvalidSchedule(InvalidTask):
    """A field of a schedule is unacceptable; ``field`` names it."""


class ScheduleNotFound(TaskQueueError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"schedule {name[:100]!r} not found")
        self.name = name


class ScheduleConflict(TaskQueueError):
    """The schedule's state does not allow the change (already paused, not
    paused, the name is taken, defined in code)."""
