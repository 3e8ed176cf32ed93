"""/health (liveness: the process answers; no database) and /ready (the
database answers and its migrations are the ones this version expects)."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.di import NamedDependency

from taskqueue import db, store
from taskqueue.api.schemas import Health, Readiness
from taskqueue.client import TaskQueue

READY_TIMEOUT_SECONDS = 2.0


@get("/health", tags=["health"], summary="Liveness")
async def health() -> Health:
    return Health(status="healthy")


@get(
    "/ready",
    tags=["health"],
    summary="Readiness: database reachable and migrations current",
    responses={},
)
async def ready(tq: NamedDependency[TaskQueue]) -> Response[Readiness]:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            applied = await store.applied_migrations(tq.pool)
    except Exception:
        return Response(
            Readiness(status="unavailable", database="unreachable", migrations="unknown"),
            status_code=503,
        )
    current = set(db.known_migrations()) <= set(applied)
    return Response(
        Readiness(
            status="ready" if current else "unavailable",
            database="connected",
            migrations="current" if current else "pending",
        ),
        status_code=200 if current else 503,
    )
