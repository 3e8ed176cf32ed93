"""Handlers for worker processes of the observability tests (``--handlers
tests.observed_handlers``): one logs through ``ctx.logger`` and through a
library's logger, and quotes the database URL (which must come out masked)."""

from __future__ import annotations

import logging
import os
from typing import Any

from taskqueue.registry import Registry, TaskContext

registry = Registry()
library = logging.getLogger("some.library")


@registry.task("chatty")
async def chatty(payload: Any, ctx: TaskContext) -> None:
    ctx.logger.info("handling %s", payload.get("n"), extra={"order": payload.get("n")})
    library.warning("connecting to %s", os.environ["DATABASE_URL"])
    if payload.get("fail"):
        raise RuntimeError("went wrong")
