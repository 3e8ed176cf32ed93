"""``create_app(settings)``: the Litestar application, its database pool
opened in a lifespan and handed to handlers through ``app.state``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide

from taskqueue import db
from taskqueue.api.actions import get_actions
from taskqueue.api.auth import Authenticator, auth_middleware
from taskqueue.api.bulk import BulkController
from taskqueue.api.errors import ApiError, handle_exception
from taskqueue.api.events import get_events
from taskqueue.api.failures import get_failures
from taskqueue.api.group_commit import GroupCommitter
from taskqueue.api.guards import request_guard_middleware
from taskqueue.api.health import HealthSnapshot, health, ready
from taskqueue.api.metrics import ApiMetrics, observe_requests
from taskqueue.api.openapi import openapi_config, redoc_script
from taskqueue.api.queues import QueueController
from taskqueue.api.schedules import ScheduleController
from taskqueue.api.stream import EventHub
from taskqueue.api.tasks import TaskController, get_stats
from taskqueue.api.workers import get_workers
from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.registry import Registry, load_registry
from taskqueue.web.router import dashboard_router

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

logger = logging.getLogger("taskqueue.api")


def _task_queue(state: State) -> TaskQueue:
    tq: TaskQueue = state.tq
    return tq


async def refuse_unknown_query_parameters(request: Request[Any, Any, Any]) -> None:
    """A misspelt filter must not quietly return everything: every query
    parameter has to be one the route declares in ``opt["query_parameters"]``
    ("*": any), and none may be given twice (only one value would count)."""
    if not request.scope["query_string"]:
        return
    known: tuple[str, ...] | str = request.route_handler.opt.get("query_parameters", ())
    if known == "*":
        return
    # In the order given (the parsed query's own order groups repeats).
    names = [name for name, _ in parse_qsl(request.scope["query_string"].decode("latin-1"), True)]
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if unknown:
        listed = ", ".join(repr(name[:64]) for name in unknown[:10])
        takes = f"it takes {', '.join(known)}" if known else "it takes none"
        raise ApiError(
            422,
            "unknown_parameter",
            f"unknown query parameter {listed}: {takes}",
            unknown[0][:64],
        )
    repeated = [name for name in dict.fromkeys(names) if names.count(name) > 1]
    if repeated:
        raise ApiError(
            422,
            "invalid_field",
            f"{repeated[0][:64]}: given more than once; give it once",
            repeated[0][:64],
        )


def create_app(
    settings: Settings,
    registry: Registry | None = None,
    *,
    metrics_also: Sequence[Callable[[], Iterator[Metric]]] = (),
) -> Litestar:
    """The REST API. ``registry``: the task types producers may enqueue
    (default: built-ins plus TASKQUEUE_HANDLERS modules). ``metrics_also``:
    more metrics for its /metrics (a worker in the same process)."""
    dsn = settings.require_database_url()
    types = registry if registry is not None else load_registry(settings.handlers)
    authenticator = Authenticator.from_settings(settings)
    dashboard, sessions = dashboard_router(settings, authenticator)
    if not authenticator.enabled:
        logger.warning("API auth is off (no TASKQUEUE_API_TOKENS): serve on 127.0.0.1 only")
    metrics = ApiMetrics(settings, metrics_also)

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
        hub = EventHub(pool)
        snapshot = HealthSnapshot(tq)
        app.state.tq = tq
        app.state.group_committer = committer
        app.state.event_hub = hub
        app.state.health = snapshot
        refreshing = asyncio.create_task(snapshot.run(), name="health snapshot")
        try:
            yield
        finally:
            hub.close()
            refreshing.cancel()
            await asyncio.gather(refreshing, return_exceptions=True)
            await committer.close()
            await pool.close()

    app = Litestar(
        route_handlers=[
            TaskController,
            BulkController,
            QueueController,
            ScheduleController,
            get_stats,
            get_failures,
            get_workers,
            get_actions,
            get_events,
            health,
            ready,
            redoc_script,
            dashboard,
            metrics.route(authenticator),
        ],
        lifespan=[lifespan],
        state=State({"settings": settings, "dashboard_sessions": sessions}),
        dependencies={"tq": Provide(_task_queue, sync_to_thread=False)},
        middleware=[request_guard_middleware(), auth_middleware(authenticator, sessions.api_actor)],
        before_request=refuse_unknown_query_parameters,
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        logging_config=None,  # the process's logging (taskqueue CLI) stays as configured
        debug=False,
    )
    app.asgi_handler = observe_requests(
        app.asgi_handler, metrics.http, access_log=settings.access_log
    )
    return app
