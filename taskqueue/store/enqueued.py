"""What tests read about enqueued tasks (taskqueue.testing): the tasks that
match an expectation, and the queues there are to drain."""

from __future__ import annotations

from typing import Any

from taskqueue.models import Status, Task
from taskqueue.store._sql import Executor, query
from taskqueue.store.tasks import _task


async def enqueued_tasks(
    conn: Executor,
    *,
    task_type: str | None,
    queue: str | None,
    payload: Any,
    status: Status | None,
    limit: int,
) -> list[Task]:
    """Matching tasks, oldest first; ``payload`` (msgspec.Raw JSON or None)
    is a document the task's payload contains."""
    records = await conn.fetch(
        query("enqueued_tasks"),
        task_type,
        queue,
        payload,
        None if status is None else status.value,
        limit,
    )
    return [_task(r) for r in records]


async def lane_queues(conn: Executor) -> list[str]:
    return [r["queue"] for r in await conn.fetch(query("lane_queues"))]
