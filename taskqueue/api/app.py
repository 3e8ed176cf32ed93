"""``create_app(settings)``: the Litestar application, its database pool
opened in a lifespan and handed to handlers through ``app.state``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from taskqueue import db
from taskqueue.api.auth import Authenticator, auth_middleware
from taskqueue.api.errors import handle_exception
from taskqueue.api.group_commit import GroupCommitter
from taskqueue.api.health import health, ready
from taskqueue.api.openapi import openapi_config
from taskqueue.api.schedules import ScheduleController
from taskqueue.api.tasks import TaskController, get_stats
from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.registry import Registry, load_registry

logger = logging.getLogger("taskqueue.api")


def _task_queue(state: State) -> TaskQueue:
    tq: TaskQueue = state.tq
    return tq


def create_app(settings: Settings, registry: Registry | None = None) -> Litestar:
    """The REST API. ``registry``: the task types producers may enqueue
    (default: built-ins plus TASKQUEUE_HANDLERS modules)."""
    dsn = settings.require_database_url()
    types = registry if registry is not None else load_registry(settings.handlers)
    authenticator = Authenticator.from_settings(settings)
    if not authenticator.enabled:
        logger.warning("API auth is off (no TASKQUEUE_API_TOKENS): serve on 127.0.0.1 only")

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # min_size=0: the API starts (and answers /health, 503s) while the
        # database is away; connections are made on first use.
        pool = await db.create_pool(
            dsn,
            min_size=0,
            max_size=settings.api_pool_size,
            application_name="taskqueue-api",
            timeout=5,
            command_timeout=30,
        )
        tq = TaskQueue(pool, types)
        committer = GroupCommitter(lambda rows: tq.insert(rows), max_batch=settings.max_batch_size)
        app.state.tq = tq
        app.state.group_committer = committer
        try:
            yield
        finally:
            await committer.close()
            await pool.close()

    return Litestar(
        route_handlers=[TaskController, get_stats, health, ready, ScheduleController],
        lifespan=[lifespan],
        state=State({"settings": settings}),
        dependencies={"tq": Provide(_task_queue, sync_to_thread=False)},
        middleware=[auth_middleware(authenticator)],
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        logging_config=None,  # the process's logging (taskqueue CLI) stays as configured
        debug=False,
    )
