"""A handler module that defines schedules in code, for worker processes
started by tests (``--handlers tests.scheduled_handlers``)."""

from __future__ import annotations

from typing import Any

from taskqueue.registry import Registry, TaskContext

registry = Registry()


@registry.periodic(
    "0 3 * * *",
    name="nightly-digest",
    timezone="Europe/Berlin",
    payload={"kind": "digest"},
    priority=5,
)
@registry.task("digest")
async def digest(payload: Any, ctx: TaskContext) -> None:
    ctx.logger.info("digest %s", payload)


registry.schedule("hourly-heartbeat", cron="@hourly", type="noop", catch_up="none")
