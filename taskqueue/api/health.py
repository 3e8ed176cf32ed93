"""/health (the process answers, with a snapshot of the queue that the API
refreshes every few seconds: a probe never costs a query) and /ready (the
database answers and its migrations are the ones this version expects)."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency

from taskqueue import db
from taskqueue.api.schemas import Health, Readiness
from taskqueue.client import TaskQueue

READY_TIMEOUT_SECONDS = 2.0


SNAPSHOT_SECONDS = 5.0
# While no worker is live one is usually starting (`make run` starts both at
# once): a probe should see it within a second, not five.
SNAPSHOT_SECONDS_WITHOUT_WORKERS = 1.0


class HealthSnapshot:
    """Live workers and due tasks, read every few seconds in the background;
    ``database`` says whether the last read worked."""

    def __init__(self, tq: TaskQueue, *, every: float = SNAPSHOT_SECONDS) -> None:
        self._tq = tq
        self._every = every
        self.value = Health(status="healthy", database="unknown", workers=0, queue_depth=0)

    async def refresh(self) -> None:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                states = await self._tq.views.queue_states()
        except Exception:
            self.value = msgspec.structs.replace(self.value, database="unreachable")
            return
        self.value = Health(
            status="healthy",
            database="connected",
            workers=states.live_workers,
            queue_depth=states.due,
        )

    async def run(self) -> None:
        while True:
            await self.refresh()
            live = self.value.workers > 0
            await asyncio.sleep(
                self._every if live else min(self._every, SNAPSHOT_SECONDS_WITHOUT_WORKERS)
            )


@get(
    "/health",
    tags=["health"],
    opt={"query_parameters": "*"},  # a probe may add a cache-buster
    summary="Liveness, with live workers and due tasks (refreshed every few seconds)",
)
async def health(state: State) -> Health:
    snapshot: HealthSnapshot = state.health
    return snapshot.value


@get(
    "/ready",
    tags=["health"],
    opt={"query_parameters": "*"},
    summary="Readiness: database reachable and migrations current",
    responses={},
)
async def ready(tq: NamedDependency[TaskQueue]) -> Response[Readiness]:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            applied = await tq.views.applied_migrations()
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
