"""``GET /metrics`` for Prometheus, and what the API measures of every
request: its duration by method, route template and status, and one access
log line (logger ``taskqueue.access``, INFO; TASKQUEUE_ACCESS_LOG=false turns
it off).

/metrics is served on the API's own port and, like every read of /api/, needs
a token with the ``read`` scope once tokens are configured: the API is the
process most often reachable from outside, so it gets no unauthenticated
surface. It carries this process's request durations and enqueue counts,
and the queue gauges read from the database, at most once per
TASKQUEUE_METRICS_CACHE_SECONDS however often it is scraped."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.http.auth import READ, Authenticator
from taskqueue.observability.metrics import (
    ENQUEUED,
    HistoryGauges,
    HttpMetrics,
    QueueGauges,
    build_registry,
)

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

access_logger = logging.getLogger("taskqueue.access")

UNMATCHED = "unmatched"  # the route label of a request no route answers
MAX_LOGGED_PATH = 200


class ApiMetrics:
    """The metrics of one API application. ``also``: more sources to serve,
    such as the worker sharing the process under ``taskqueue run``."""

    def __init__(
        self, settings: Settings, also: Sequence[Callable[[], Iterator[Metric]]] = ()
    ) -> None:
        self.http = HttpMetrics()
        self.gauges = QueueGauges(max_age=settings.metrics_cache_seconds)
        self.history = HistoryGauges(max_age=settings.metrics_cache_seconds)
        self._sources = (
            ENQUEUED.collect,
            self.http.collect,
            self.gauges.collect,
            self.history.collect,
            *also,
        )
        self._registry: CollectorRegistry | None = None

    @property
    def registry(self) -> CollectorRegistry:
        """Built (and prometheus_client imported) at the first scrape: an API
        nobody scrapes does not pay for it."""
        if self._registry is None:
            self._registry = build_registry(*self._sources)
        return self._registry

    def route(self, authenticator: Authenticator) -> HTTPRouteHandler:
        gauges = self.gauges
        history = self.history

        @get("/metrics", include_in_schema=False)
        async def metrics(
            request: Request[Any, Any, Any], tq: NamedDependency[TaskQueue]
        ) -> Response[bytes]:
            from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

            if authenticator.enabled:
                authenticator.check(request.headers.get("authorization", ""), READ)
            # failed=True: the finish counts (queue_counts, a few rows per
            # queue) for the expired gauge.
            await gauges.refresh(lambda: tq.views.queue_states(failed=True))
            await history.refresh(tq.views.default_partition_rows)
            exposition = generate_latest(self.registry)
            return Response(exposition, media_type=CONTENT_TYPE_PLAIN_0_0_4)

        return metrics


def observe_requests(app: ASGIApp, http: HttpMetrics, *, access_log: bool) -> ASGIApp:
    """Wrap the whole application (outside routing and its error handling, so
    that 404s and auth refusals count too): each HTTP request's duration, by
    method, route template and status; and an access log line without the
    query string, which may carry secrets."""
    clock = time.perf_counter
    observe = http.observe
    log = access_logger.info if access_log else None

    async def observed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = clock()
        path = scope["path"]  # routing rewrites it; the query string is elsewhere
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            seconds = clock() - started
            method: str = scope.get("method", "GET")
            route: str = scope.get("path_template") or UNMATCHED
            observe(method, route, status, seconds)
            if log is not None:
                shown = _printable(path)
                log(
                    "%s %s %d %.1fms",
                    method,
                    shown,
                    status,
                    seconds * 1000,
                    extra={
                        "method": method,
                        "path": shown,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )

    return observed


def _printable(path: str) -> str:
    """The path as one line of bounded length (it is decoded: %0A is a newline)."""
    if len(path) > MAX_LOGGED_PATH:
        path = path[:MAX_LOGGED_PATH] + "…"
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")
