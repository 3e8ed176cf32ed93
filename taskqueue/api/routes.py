"""Every route of the REST API, for taskqueue.app to mount beside the
dashboard (the /metrics route, built per app, is added there)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from taskqueue.api.actions import get_actions
from taskqueue.api.bulk import BulkController
from taskqueue.api.events import get_events
from taskqueue.api.failures import get_failures
from taskqueue.api.health import health, ready
from taskqueue.api.openapi import redoc_script
from taskqueue.api.queues import QueueController
from taskqueue.api.results import get_result
from taskqueue.api.schedules import ScheduleController
from taskqueue.api.tasks import TaskController, get_stats
from taskqueue.api.tenants import TenantController
from taskqueue.api.workers import get_workers
from taskqueue.api.workflows import WorkflowController

ROUTE_HANDLERS: tuple[ControllerRouterHandler, ...] = (
    TaskController,
    BulkController,
    QueueController,
    ScheduleController,
    WorkflowController,
    TenantController,
    get_stats,
    get_result,
    get_failures,
    get_workers,
    get_actions,
    get_events,
    health,
    ready,
    redoc_script,
)
