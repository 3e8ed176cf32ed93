"""``TaskQueue``: the Python API for producers and operators, also used by the
REST API. A façade: each method checks its arguments and makes one call.
The rules live in the modules named after them: ``enqueue`` (turning what a
caller gave into rows), ``limits`` (every bound), ``queues`` (``tq.queues``),
``schedules.manager`` (``tq.schedules``) and ``store`` (every statement)."""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Unpack

import asyncpg
import msgspec

from taskqueue import db, enqueue, limits, store, workflows
from taskqueue.config import Retention
from taskqueue.errors import (
    InvalidArgument,
    InvalidTask,
    TaskFailed,
    TaskNotFound,
    TaskStateConflict,
)
from taskqueue.events import matches
from taskqueue.limits import DEFAULT_MAX_RETRIES as DEFAULT_MAX_RETRIES
from taskqueue.limits import DEFAULT_QUEUE as DEFAULT_QUEUE
from taskqueue.limits import DEFAULT_TIMEOUT_SECONDS as DEFAULT_TIMEOUT_SECONDS
from taskqueue.limits import MAX_BULK as MAX_BULK
from taskqueue.limits import MAX_DELAY_SECONDS as MAX_DELAY_SECONDS
from taskqueue.limits import MAX_KEY_LENGTH as MAX_KEY_LENGTH
from taskqueue.limits import MAX_LIMIT as MAX_LIMIT
from taskqueue.limits import MAX_NAME_LENGTH as MAX_NAME_LENGTH
from taskqueue.limits import MAX_PAGE_SIZE as MAX_PAGE_SIZE
from taskqueue.limits import MAX_PRIORITY as MAX_PRIORITY
from taskqueue.limits import MAX_QUEUE_LENGTH as MAX_QUEUE_LENGTH
from taskqueue.limits import MAX_RETRIES_LIMIT as MAX_RETRIES_LIMIT
from taskqueue.limits import MAX_TIMEOUT_SECONDS as MAX_TIMEOUT_SECONDS
from taskqueue.limits import MAX_TYPE_LENGTH as MAX_TYPE_LENGTH
from taskqueue.limits import check_bulk, check_filter_text, check_page, check_window
from taskqueue.models import (
    BulkResult,
    Enqueued,
    FailureGroup,
    NewSchedule,
    NewTask,
    OperatorAction,
    QueueInfo,
    Schedule,
    ScheduleDetails,
    Stats,
    Status,
    StreamEvent,
    Task,
    TaskEvent,
    TaskFilter,
    TaskOptions,
    WorkerInfo,
    new_task,
)
from taskqueue.queues import DEFAULT_RETENTION, Queues
from taskqueue.registry import Registry, load_registry
from taskqueue.results import TERMINAL, PoolResults
from taskqueue.schedules import ScheduleFields, could_exist
from taskqueue.schedules.manager import Schedules
from taskqueue.tenants import Tenants
from taskqueue.validation import as_task_id, zoned_problem
from taskqueue.views import Views

_NOT_SET: Any = msgspec.UNSET


class TaskQueue:
    """Enqueue and inspect tasks; ``tq.queues``, ``tq.schedules`` and
    ``tq.workflows`` group the operations on queues, schedules and graphs of
    tasks, ``tq.views`` what the dashboard, /health and the event stream read.

    ``registry``: the task types producers may enqueue; their payloads are
    checked against the declared types. Defaults to the built-in types.
    Pass ``registry=None`` to accept any type unchecked (a producer that does
    not import the handlers).

    ``reuse_connection``: keep one of the pool's connections for calls made
    one at a time (about 10 % faster each; concurrent calls still use the
    pool). ``TaskQueue.connect()`` turns it on, since its pool is its own;
    ``close()`` hands the connection back before closing the pool.

    ``retention``: the default retention queues without their own show
    (``Settings.retention``; the built-in defaults when left out)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: Registry | None = _NOT_SET,
        *,
        reuse_connection: bool = False,
        retention: Retention = DEFAULT_RETENTION,
    ) -> None:
        self.pool = pool
        self.registry: Registry | None = load_registry([]) if registry is _NOT_SET else registry
        # Off for a pool the caller owns: it would keep one of its connections.
        self._db = db.Runner(pool, reuse_connection=reuse_connection)
        self.queues = Queues(self._db, retention)
        self.schedules = Schedules(self._db, self.registry)
        self.views = Views(self._db)
        self._results = PoolResults(pool, self._db)  # result(): one LISTEN while anyone waits
        self.workflows = workflows.Workflows(self._db, self.registry)
        self.tenants = Tenants(self._db)  # quotas (README "Tenants")

    @classmethod
    async def connect(cls, dsn: str, registry: Registry | None = _NOT_SET) -> TaskQueue:
        return cls(await db.create_pool(dsn), registry, reuse_connection=True)

    async def close(self) -> None:
        """Close the pool (and hand back a reused connection first)."""
        await self._results.close()
        await self._db.close()
        await self.pool.close()

    async def __aenter__(self) -> TaskQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- producing ---------------------------------------------------------------

    async def enqueue(
        self,
        type: str,
        payload: Any = None,
        *,
        connection: Any = None,
        **options: Unpack[TaskOptions],
    ) -> Task:
        """Add one task; with ``connection`` (see taskqueue.connections) it joins that
        connection's transaction. An ``idempotency_key`` in use returns the existing task.
        Options: models.TaskOptions (README: expiry, callbacks, tenants, sequences, keys)."""
        new = new_task(type, payload, options)
        (result,) = await self.submit([new], connection=connection)
        return result.task

    async def enqueue_many(
        self, tasks: Sequence[NewTask], *, connection: Any = None
    ) -> builtins.list[Task]:
        """Add many tasks in one statement (and one commit)."""
        return [r.task for r in await self.submit(tasks, connection=connection)]

    async def submit(
        self, tasks: Sequence[NewTask], *, connection: Any = None
    ) -> builtins.list[Enqueued]:
        """Like ``enqueue_many``, but also says which tasks this call created
        (``created=False``: the idempotency key already belonged to that task)."""
        return enqueue.decode_payloads(
            await self.insert(self.prepare(tasks), connection=connection)
        )

    def prepare(self, tasks: Sequence[NewTask]) -> builtins.list[store.TaskRow]:
        """Validate new tasks and fill in every default, without touching the
        database; raises InvalidTask naming the field (``tasks[i].field`` in a batch)."""
        return enqueue.prepare(tasks, self.registry)

    async def insert(
        self, rows: Sequence[store.TaskRow], *, connection: Any = None
    ) -> builtins.list[Enqueued]:
        """Insert prepared tasks in one statement. The payloads of the tasks
        it returns as created are the JSON that was sent, as ``msgspec.Raw``
        (``submit`` decodes them)."""
        if connection is not None:
            # Imported here: it loads psycopg, which asyncpg-only processes never need.
            from taskqueue import connections

            own = await connections.async_connection(connection)
            return await enqueue.insert(lambda batch: store.enqueue_tasks(own, batch), rows)
        return await enqueue.insert(lambda batch: self._db.run(store.enqueue_tasks, batch), rows)

    # -- inspecting and managing -----------------------------------------------

    async def get(self, task_id: uuid.UUID | str) -> Task:
        found = _task_id(task_id)
        task = await self._db.run(store.get_task, found)
        if task is None:
            raise TaskNotFound(found)
        return task

    async def wait(self, task_id: uuid.UUID | str, timeout: float = 30.0) -> Task:  # noqa: ASYNC109
        """The task once it ended (one LISTEN per TaskQueue, no polling);
        TimeoutError after ``timeout`` seconds, TaskNotFound for an unknown id."""
        task = await self._results.wait_for(_task_id(task_id), timeout)
        if task.status not in TERMINAL:
            raise TimeoutError(f"task {task.id} has not finished within {timeout:g}s")
        return task

    async def result(self, task_id: uuid.UUID | str, timeout: float = 30.0) -> Any:  # noqa: ASYNC109
        """What the handler returned, once the task succeeded; TaskFailed (carrying
        the task) when it ended otherwise; TimeoutError as ``wait``."""
        task = await self.wait(task_id, timeout)
        if task.status is not Status.SUCCEEDED:
            raise TaskFailed(task)
        return task.result

    async def list(
        self,
        *,
        status: Status | str | None = None,
        queue: str | None = None,
        type: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        cursor: uuid.UUID | str | None = None,
        limit: int = 100,
        schedule: str | None = None,
        tenant: str | None = None,
    ) -> builtins.list[Task]:
        """Newest first. For the next page pass ``cursor=`` the last task's id.
        ``schedule``: only tasks that schedule fired; ``tenant``: only that tenant's.
        Raises InvalidTask naming the argument that cannot be a filter."""
        before = limits.check_list(
            limit=limit,
            status=status,
            queue=queue,
            task_type=type,
            created_after=created_after,
            created_before=created_before,
            cursor=cursor,
            tenant=tenant,
        )
        if schedule is not None and not could_exist(schedule):
            return []  # no task can name it, and it must not reach SQL as an error
        return await self._db.run(
            store.list_tasks,
            status=None if status is None else Status(status),
            queue=queue,
            task_type=type,
            created_after=created_after,
            created_before=created_before,
            before_id=before,
            limit=limit,
            schedule=schedule,
            tenant=tenant,
        )

    async def history(self, task_id: uuid.UUID | str) -> builtins.list[TaskEvent]:
        found = _task_id(task_id)
        events = await self._db.run(store.task_history, found)
        if not events and await self._db.run(store.get_task, found) is None:
            raise TaskNotFound(found)
        return events

    async def cancel(self, task_id: uuid.UUID | str, *, actor: str = "local") -> Task:
        """Cancel a queued or running task (a running one's handler is told to stop, its
        outcome discarded); finished ones raise TaskStateConflict. ``actor``: for the log."""
        found = _task_id(task_id)
        task = await self._db.run(store.cancel_task, found, actor)
        if task is None:
            current = await self.get(found)
            raise TaskStateConflict(found, current.status, "cancel", "queued or running")
        return task

    async def retry(self, task_id: uuid.UUID | str, *, actor: str = "local") -> Task:
        """Put a failed or cancelled task back in its queue (event task_requeued)."""
        found = _task_id(task_id)
        task = await self._db.run(store.retry_task, found, actor)
        if task is None:
            current = await self.get(found)
            raise TaskStateConflict(found, current.status, "retry", "failed or cancelled")
        return task

    async def stats(self, *, tenant: str | None = None) -> Stats:
        """Task counts, in total and per queue; ``tenant``: only its tasks."""
        if tenant is not None:
            limits.check_tenant(tenant)
            return await self._db.run(store.tenant_stats, tenant)
        return (await self.views.queue_states(totals=True)).stats()

    async def workers(
        self, *, offset: int = 0, limit: int | None = None
    ) -> builtins.list[WorkerInfo]:
        return await self.views.workers(offset=offset, limit=limit)  # newest first

    # -- the flat names of tq.queues ---------------------------------------------

    async def queue(self, name: str) -> QueueInfo:
        return await self.queues.get(name)

    async def pause(self, queue: str, *, actor: str = "local") -> QueueInfo:
        return await self.queues.pause(queue, actor=actor)

    async def resume(self, queue: str, *, actor: str = "local") -> QueueInfo:
        return await self.queues.resume(queue, actor=actor)

    async def set_limits(self, queue: str, **limits: Any) -> QueueInfo:
        return await self.queues.set_limits(queue, **limits)  # concurrency, rate, per_key, actor

    # -- bulk actions and the operator log -----------------------------------------

    async def failures(
        self,
        *,
        queue: str | None = None,
        type: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        tenant: str | None = None,
    ) -> builtins.list[FailureGroup]:
        """Failed tasks grouped by queue, type and error, biggest first; ``offset`` pages."""
        check_filter_text(queue, type)
        limits.check_tenant(tenant)
        if since is not None and (problem := zoned_problem(since)):
            raise InvalidArgument("since", problem)
        check_window(offset, limit)
        return await self._db.run(store.failure_groups, queue, type, since, limit, offset, tenant)

    async def retry_many(
        self,
        ids: Sequence[uuid.UUID] | None = None,
        *,
        where: TaskFilter | None = None,
        after: uuid.UUID | None = None,
        limit: int = MAX_BULK,
        actor: str = "local",
    ) -> BulkResult:
        """Failed or cancelled tasks, by ``ids`` or matching ``where``, back to
        their queues: one statement for up to ``limit`` tasks; continue with
        ``after=result.next`` while it is not None."""
        return await self._bulk("retry", ids, where, after, limit, actor)

    async def cancel_many(
        self,
        ids: Sequence[uuid.UUID] | None = None,
        *,
        where: TaskFilter | None = None,
        after: uuid.UUID | None = None,
        limit: int = MAX_BULK,
        actor: str = "local",
    ) -> BulkResult:
        """Cancel queued and running tasks, by ``ids`` or matching ``where``."""
        return await self._bulk("cancel", ids, where, after, limit, actor)

    async def delete_many(
        self,
        ids: Sequence[uuid.UUID] | None = None,
        *,
        where: TaskFilter | None = None,
        after: uuid.UUID | None = None,
        limit: int = MAX_BULK,
        actor: str = "local",
    ) -> BulkResult:
        """Delete finished tasks (their history stays, with task_deleted)."""
        return await self._bulk("delete", ids, where, after, limit, actor)

    async def _bulk(
        self,
        action: str,
        ids: Sequence[uuid.UUID] | None,
        where: TaskFilter | None,
        after: uuid.UUID | None,
        limit: int,
        actor: str,
    ) -> BulkResult:
        asked = check_bulk(ids, where, after, limit)
        return await self._db.run(
            store.bulk_action,
            action,
            ids=ids,
            where=where,
            after=after,
            limit=limit,
            actor=actor,
            asked=asked,
            tenant=self._bulk_tenant(where),
        )

    def _bulk_tenant(self, where: TaskFilter | None) -> str | None:
        """The tenant a bulk action is limited to (a scoped handle: its own)."""
        return None if where is None else where.tenant

    async def actions(
        self, *, before: int | None = None, limit: int = 100
    ) -> builtins.list[OperatorAction]:
        """The operator log, newest first; ``before`` an id for the next page."""
        check_page(limit)
        if before is not None and not 1 <= before < 2**63:
            raise InvalidArgument("before", "an action id")
        return await self._db.run(store.list_actions, before_id=before, limit=limit)

    async def events(
        self,
        *,
        queue: str | None = None,
        type: str | None = None,
        task_id: uuid.UUID | None = None,
        after: int | None = None,
        poll_interval: float = 0.25,
    ) -> AsyncIterator[StreamEvent]:
        """Task events as they happen (from ``after``, an event id, or from
        now), filtered; runs until the caller stops iterating."""
        tail = await self.views.tail(after)
        while True:
            for event in await tail.poll():
                if matches(event, queue=queue, task_type=type, task_id=task_id):
                    yield event
            await asyncio.sleep(poll_interval)

    # -- the flat names of tq.schedules ------------------------------------------

    async def add_schedule(
        self, name: str, *, type: str, cron: str | None = None, **fields: Unpack[ScheduleFields]
    ) -> Schedule:
        return await self.schedules.add(name, type=type, cron=cron, **fields)

    async def create_schedule(self, new: NewSchedule) -> Schedule:
        return await self.schedules.create(new)

    async def define_schedules(self, defined: Sequence[NewSchedule]) -> builtins.list[Schedule]:
        return await self.schedules.define_all(defined)

    async def list_schedules(
        self, *, after: str | None = None, limit: int = 100
    ) -> builtins.list[Schedule]:
        return await self.schedules.list(after=after, limit=limit)

    async def get_schedule(self, name: str) -> Schedule:
        return await self.schedules.get(name)

    async def schedule_details(
        self, name: str, *, upcoming: int = 5, recent: int = 10
    ) -> ScheduleDetails:
        return await self.schedules.details(name, upcoming=upcoming, recent=recent)

    async def update_schedule(self, name: str, /, **changes: Any) -> Schedule:
        return await self.schedules.update(name, **changes)

    async def pause_schedule(self, name: str) -> Schedule:
        return await self.schedules.pause(name)

    async def resume_schedule(self, name: str) -> Schedule:
        return await self.schedules.resume(name)

    async def trigger_schedule(self, name: str) -> Task:
        return await self.schedules.trigger(name)

    async def delete_schedule(self, name: str) -> None:
        await self.schedules.delete(name)


def _task_id(value: object) -> uuid.UUID:
    """A malformed id is a task that cannot exist; something else entirely is a mistake."""
    found = as_task_id(value)
    if found is not None:
        return found
    if isinstance(value, str):
        raise TaskNotFound(repr(value[:64]))
    raise InvalidTask("id", f"must be a UUID or its text, not {type(value).__name__}")
