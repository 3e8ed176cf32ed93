"""taskqueue: a task queue for Python whose only infrastructure is PostgreSQL."""

__version__ = "0.1.0"

from taskqueue.backoff import Backoff, Jitter
from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.errors import (
    InvalidTask,
    Permanent,
    Snooze,
    TaskFailed,
    TaskNotFound,
    TaskQueueError,
    TaskStateConflict,
    UnknownTaskType,
)
from taskqueue.models import NewTask, Status, Task, TaskEvent
from taskqueue.registry import Registry, TaskContext

__all__ = [
    "Backoff",
    "InvalidTask",
    "Jitter",
    "NewTask",
    "Permanent",
    "Registry",
    "Settings",
    "Snooze",
    "Status",
    "Task",
    "TaskContext",
    "TaskEvent",
    "TaskFailed",
    "TaskNotFound",
    "TaskQueue",
    "TaskQueueError",
    "TaskStateConflict",
    "UnknownTaskType",
]
