"""How taskqueue processes log: one format for every part, and the task being
run as context on every record logged while it runs, whichever logger the
handler (or a library it calls) uses."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskqueue.models import ClaimedTask

# Set by the executor around each handler call: (task, worker id). A context
# variable follows the handler into every coroutine it awaits.
running_task: ContextVar[tuple[ClaimedTask, str] | None] = ContextVar(
    "taskqueue_running_task", default=None
)

TASK_FIELDS = ("task_id", "task_type", "queue", "attempt", "worker_id")


class TaskContextFilter(logging.Filter):
    """Copies the running task's fields onto each record (``task_id``,
    ``task_type``, ``queue``, ``attempt``, ``worker_id``) at the moment it is
    logged. Installed on handlers, so records of every logger get them."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = running_task.get()
        if current is not None and not hasattr(record, "task_id"):
            task, worker_id = current
            record.task_id = str(task.id)
            record.task_type = task.type
            record.queue = task.queue
            record.attempt = task.attempt
            record.worker_id = worker_id
        return True


class ConsoleFormatter(logging.Formatter):
    """``time LEVEL logger: message`` and, inside a task, `` [task <id> <type>
    queue=<q> attempt=<n>]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        task_id = getattr(record, "task_id", None)
        if task_id is None:
            return text
        suffix = (
            f" [task {task_id} {getattr(record, 'task_type', '?')}"
            f" queue={getattr(record, 'queue', '?')} attempt={getattr(record, 'attempt', '?')}]"
        )
        # Keep a traceback after the context, on its own lines.
        head, sep, rest = text.partition("\n")
        return f"{head}{suffix}{sep}{rest}"


def configure(verbose: bool = False) -> None:
    """Log to stderr in the console format, task context included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    handler.addFilter(TaskContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for chatty in ("yoyo", "httpx", "httpcore", "asyncio"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
