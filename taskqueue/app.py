"""``create_app(settings)``: the whole HTTP application. It mounts the REST
API (taskqueue.api) and the dashboard (taskqueue.web) side by side, puts the
shared middleware (taskqueue.http) in front of both, and opens the database
pool they share in a lifespan, handed to handlers through ``app.state``.
This is the one module that imports both surfaces; neither imports the
other."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide

from taskqueue import db
from taskqueue.api.group_commit import GroupCommitter
from taskqueue.api.health import HealthSnapshot
from taskqueue.api.metrics import ApiMetrics, observe_requests
from taskqueue.api.openapi import openapi_config
from taskqueue.api.routes import ROUTE_HANDLERS
from taskqueue.api.stream import EventHub
from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.http.auth import Authenticator, auth_middleware, tenant_of
from taskqueue.http.errors import handle_exception
from taskqueue.http.guards import request_guard_middleware
from taskqueue.http.hosts import LOOPBACK_HOSTS, host_guard_middleware, parse_allowed_hosts
from taskqueue.http.query import refuse_unknown_query_parameters
from taskqueue.pooler import Pooler
from taskqueue.registry import Registry, load_registry
from taskqueue.results import ResultWaiters
from taskqueue.tenancy import TenantQueue
from taskqueue.web.router import dashboard_router

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

logger = logging.getLogger("taskqueue.api")


RESULT_RECHECK_SECONDS = 0.5  # result waits behind a pooler with no direct URL


def _task_queue(state: State, request: Request[Any, Any, Any]) -> TaskQueue:
    """The app's TaskQueue, scoped to the request's tenant when its token has one."""
    tq: TaskQueue = state.tq
    tenant = tenant_of(request)
    return tq if tenant is None else TenantQueue(tq, tenant)


def create_app(
    settings: Settings,
    registry: Registry | None = None,
    *,
    metrics_also: Sequence[Callable[[], Iterator[Metric]]] = (),
) -> Litestar:
    """The REST API and the dashboard. ``registry``: the task types producers may enqueue
    (default: built-ins plus TASKQUEUE_HANDLERS modules). ``metrics_also``:
    more metrics for its /metrics (a worker in the same process)."""
    dsn = settings.require_database_url()
    types = registry if registry is not None else load_registry(settings.handlers)
    authenticator = Authenticator.from_settings(settings)
    dashboard, sessions = dashboard_router(settings, authenticator)
    if not authenticator.enabled:
        logger.warning("API auth is off (no TASKQUEUE_API_TOKENS): serve on 127.0.0.1 only")
    metrics = ApiMetrics(settings, metrics_also)
    allowed_hosts = parse_allowed_hosts(settings.allowed_hosts)
    host_guard = (
        [host_guard_middleware(LOOPBACK_HOSTS | allowed_hosts)]
        if allowed_hosts or not authenticator.enabled
        else []
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # min_size=0: the API starts (and answers /health, 503s) while the
        # database is away; connections are made on first use.
        pooler = Pooler(settings.pooler)
        pool = await db.create_pool(
            dsn,
            min_size=0,
            max_size=settings.api_pool_size,
            application_name="taskqueue-api",
            pooler=pooler,
            timeout=5,
            command_timeout=30,
        )
        tq = TaskQueue(pool, types, retention=settings.retention)
        sessions.revocations.bind(db.Runner(pool))
        committer = GroupCommitter(lambda rows: tq.insert(rows), max_batch=settings.max_batch_size)
        hub = EventHub(tq.views)

        # One LISTEN for every result waiter of this process, on a connection
        # of its own (LISTEN is session state: never on the pool), to the
        # server itself when DATABASE_URL is a pooler. Behind a pooler with no
        # direct URL no notification arrives: waiters read again twice a second
        # (the pool has looked by the time anyone waits: the wait reads through it).
        def recheck() -> float | None:
            return RESULT_RECHECK_SECONDS if pooler.pooled and not settings.direct_url else None

        result_waiters = ResultWaiters(
            lambda: db.connect(
                settings.direct_url or dsn,
                timeout=10,
                server_settings={"application_name": "taskqueue-api-results"},
            ),
            lambda conn: conn.close(),
            recheck=recheck,
        )
        snapshot = HealthSnapshot(tq)
        app.state.tq = tq
        app.state.group_committer = committer
        app.state.event_hub = hub
        app.state.result_waiters = result_waiters
        app.state.health = snapshot
        refreshing = asyncio.create_task(snapshot.run(), name="health snapshot")
        try:
            yield
        finally:
            hub.close()
            await result_waiters.close()
            refreshing.cancel()
            await asyncio.gather(refreshing, return_exceptions=True)
            await committer.close()
            await pool.close()

    app = Litestar(
        route_handlers=[*ROUTE_HANDLERS, dashboard, metrics.route(authenticator)],
        lifespan=[lifespan],
        state=State({"settings": settings, "dashboard_sessions": sessions}),
        dependencies={"tq": Provide(_task_queue, sync_to_thread=False)},
        middleware=[
            *host_guard,
            request_guard_middleware(),
            auth_middleware(authenticator, sessions.api_actor),
        ],
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
