"""What the live surfaces read (``tq.views``): the dashboard, ``/health``,
the metrics gauges and the event stream. Each is one store statement, so
the web and API layers reach the database only through ``TaskQueue``; a
queue's state has one read model, ``queue_states``, whichever surface asks."""

from __future__ import annotations

import uuid
from datetime import datetime

from taskqueue import db, store
from taskqueue.events import EventTail
from taskqueue.limits import check_window
from taskqueue.models import OperatorAction, Status, StreamEvent, Task, WorkerInfo


class Views:
    """Read models over ``runner``'s database."""

    def __init__(self, runner: db.Runner) -> None:
        self._db = runner

    async def queue_states(
        self,
        queue: str | None = None,
        *,
        failed: bool = False,
        totals: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> store.QueueStates:
        """Every queue's state (or ``queue``'s, or a page of them by name),
        from the partial indexes; ``failed`` adds failed counts, ``totals``
        the counts of every row."""
        return await self._db.run(
            store.queue_states, queue, failed=failed, totals=totals, offset=offset, limit=limit
        )

    async def default_partition_rows(self) -> int:
        """Events in the history's default partition (0 while partition
        maintenance keeps up)."""
        return await self._db.run(store.default_partition_rows)

    async def event_partitions(self) -> list[store.EventPartition]:
        """The history's partitions, the default partition first."""
        return await self._db.run(store.event_partitions)

    async def now(self) -> datetime:
        """The database's clock."""
        return await self._db.run(store.database_now)

    async def throughput(
        self, since: datetime, until: datetime | None = None
    ) -> list[store.MinuteCounts]:
        return await self._db.run(store.dashboard_throughput, since, until)

    async def failures(self, limit: int) -> list[store.FailureGlance]:
        return await self._db.run(store.dashboard_failures, limit)

    async def cancelled(self) -> int:
        return await self._db.run(store.dashboard_cancelled)

    async def total(self) -> int:
        """Every task: the live ones and the finish counters (dashboard_total.sql)."""
        return await self._db.run(store.dashboard_total)

    async def search(
        self,
        text: str,
        *,
        status: Status | None = None,
        queue: str | None = None,
        task_type: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        before_id: uuid.UUID | None = None,
        limit: int = 50,
        tenant: str | None = None,
    ) -> list[Task]:
        """Tasks whose name starts with ``text`` or whose idempotency key is
        ``text`` (``tenant``: only that tenant's)."""
        return await self._db.run(
            store.search_tasks,
            text,
            status=status,
            queue=queue,
            task_type=task_type,
            created_after=created_after,
            created_before=created_before,
            before_id=before_id,
            limit=limit,
            tenant=tenant,
        )

    async def workers(self, *, offset: int = 0, limit: int | None = None) -> list[WorkerInfo]:
        """The worker registry: running, stopping, stopped and lost workers,
        newest first (a page of it with ``offset`` and ``limit``)."""
        check_window(offset, limit)
        return await self._db.run(store.list_workers, offset=offset, limit=limit)

    async def applied_migrations(self) -> list[str]:
        return await self._db.run(store.applied_migrations)

    async def events_after(self, after_id: int, limit: int = 1000) -> list[StreamEvent]:
        return await self._db.run(store.events_after, after_id, limit)

    async def last_action_id(self) -> int:
        return await self._db.run(store.last_action_id)

    async def actions_after(self, after_id: int) -> list[OperatorAction]:
        return await self._db.run(store.actions_after, after_id)

    async def tail(self, after: int | None = None) -> EventTail:
        """Task events from ``after`` (an event id), or from now."""
        pool = self._db.pool
        return await EventTail.from_now(pool) if after is None else EventTail(pool, after)
