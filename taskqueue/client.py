"""``TaskQueue``: the Python API for producers and operators, also used by the
REST API. It validates new tasks against the registry, fills in defaults and
calls ``store``; it runs no SQL itself."""

from __future__ import annotations

import asyncio
import builtins
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
import msgspec

from taskqueue import db, schedules, store, tracing
from taskqueue.errors import (
    InvalidArgument,
    InvalidTask,
    QueueNotFound,
    TaskNotFound,
    TaskStateConflict,
)
from taskqueue.events import EventTail, matches
from taskqueue.metrics import ENQUEUED
from taskqueue.models import (
    BulkResult,
    CatchUp,
    Enqueued,
    FailureGroup,
    FireTime,
    NewSchedule,
    NewTask,
    OperatorAction,
    Overlap,
    QueueInfo,
    RateLimit,
    Schedule,
    ScheduleDetails,
    Stats,
    Status,
    StreamEvent,
    Task,
    TaskEvent,
    TaskFilter,
    WorkerInfo,
    uuid7,
)
from taskqueue.registry import Registry, TaskSpec, load_registry
from taskqueue.schedules import InvalidSchedule, ScheduleConflict, ScheduleNotFound
from taskqueue.validation import (
    MAX_PAYLOAD_DEPTH,
    as_task_id,
    json_problem,
    queue_problem,
    text_problem,
    zoned_problem,
)

DEFAULT_QUEUE = "default"
DEFAULT_MAX_RETRIES = 3
DEFAULT_TIMEOUT_SECONDS = 30.0

# Bounds that keep one producer from hurting everyone else.
MAX_NAME_LENGTH = 200
MAX_TYPE_LENGTH = 100
MAX_QUEUE_LENGTH = 100
MAX_KEY_LENGTH = 200
MAX_PRIORITY = 1000
MAX_RETRIES_LIMIT = 100
MAX_TIMEOUT_SECONDS = 86400.0
MAX_PAGE_SIZE = 1000
MAX_DELAY_SECONDS = 10 * 365 * 86400.0
MAX_BULK = 10_000  # tasks one bulk action changes in one statement
MAX_LIMIT = 1_000_000  # the largest concurrency or rate limit

_NOT_SET: Any = msgspec.UNSET
_decode_json = msgspec.json.Decoder().decode
_encode_json = msgspec.json.Encoder().encode
_NUMBER = (int, float)
_NUL_ESCAPE = b"\\u0000"
_TOO_DEEP = (
    f"nested deeper than {MAX_PAYLOAD_DEPTH} levels of arrays and objects (or contains itself)"
)
# A JSON document nests at most half its length deep.
_SHORT_JSON = 2 * MAX_PAYLOAD_DEPTH + 1
P = ParamSpec("P")
T = TypeVar("T")


class TaskQueue:
    """Enqueue and inspect tasks.

    ``registry``: the task types producers may enqueue; their payloads are
    checked against the declared types. Defaults to the built-in types.
    Pass ``registry=None`` to accept any type unchecked (a producer that does
    not import the handlers).

    ``reuse_connection``: keep one of the pool's connections for calls made
    one at a time (about 10 % faster each; concurrent calls still use the
    pool). ``TaskQueue.connect()`` turns it on, since its pool is its own;
    ``close()`` hands the connection back before closing the pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: Registry | None = _NOT_SET,
        *,
        reuse_connection: bool = False,
    ) -> None:
        self.pool = pool
        self.registry: Registry | None = load_registry([]) if registry is _NOT_SET else registry
        # Off for a pool the caller owns: it would keep one of its connections.
        self._reused = db.ReusedConnection(pool) if reuse_connection else None

    @classmethod
    async def connect(cls, dsn: str, registry: Registry | None = _NOT_SET) -> TaskQueue:
        return cls(await db.create_pool(dsn), registry, reuse_connection=True)

    async def close(self) -> None:
        """Close the pool (and hand back a reused connection first)."""
        if self._reused is not None:
            await self._reused.close()
        await self.pool.close()

    async def _run(
        self,
        statement: Callable[Concatenate[store.Executor, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        # Without a caller's connection every statement is its own transaction.
        if self._reused is not None:
            return await self._reused.run(statement, *args, **kwargs)
        return await statement(self.pool, *args, **kwargs)

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
        queue: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: float | None = None,
        max_retries: int | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
        name: str = "",
        connection: store.Connection | None = None,
    ) -> Task:
        """Add one task. With ``connection`` the insert joins that connection's
        current transaction: it commits or rolls back with the caller's work.
        With an ``idempotency_key`` already in use, the existing task is returned."""
        new = NewTask(
            type=type,
            payload={} if payload is None else payload,
            queue=queue,
            name=name,
            priority=priority,
            max_retries=max_retries,
            timeout_seconds=timeout_seconds,
            run_at=run_at,
            delay_seconds=delay,
            idempotency_key=idempotency_key,
        )
        (result,) = await self.submit([new], connection=connection)
        return result.task

    async def enqueue_many(
        self, tasks: Sequence[NewTask], *, connection: store.Connection | None = None
    ) -> builtins.list[Task]:
        """Add many tasks in one statement (and one commit)."""
        return [r.task for r in await self.submit(tasks, connection=connection)]

    async def submit(
        self, tasks: Sequence[NewTask], *, connection: store.Connection | None = None
    ) -> builtins.list[Enqueued]:
        """Like ``enqueue_many``, but also says which tasks this call created
        (``created=False``: the idempotency key already belonged to that task)."""
        results = await self.insert(self.prepare(tasks), connection=connection)
        for result in results:
            payload = result.task.payload
            if isinstance(payload, msgspec.Raw):
                # The JSON that was stored, decoded: what get() will read.
                result.task.payload = _decode_json(payload)
        return results

    def prepare(self, tasks: Sequence[NewTask]) -> builtins.list[store.TaskRow]:
        """Validate new tasks and fill in every default, without touching the
        database; raises InvalidTask naming the field (``tasks[i].field`` in a batch)."""
        # Once per call, not per task: the same span enqueues them all.
        traceparent = tracing.current_traceparent()
        count = len(tasks)
        return [self._resolve(task, index, count, traceparent) for index, task in enumerate(tasks)]

    async def insert(
        self, rows: Sequence[store.TaskRow], *, connection: store.Connection | None = None
    ) -> builtins.list[Enqueued]:
        """Insert prepared tasks in one statement. The payloads of the tasks
        it returns as created are the JSON that was sent, as ``msgspec.Raw``
        (``submit`` decodes them)."""
        try:
            if connection is not None:
                results = await store.enqueue_tasks(connection, rows)
            else:
                results = await self._run(store.enqueue_tasks, rows)
        except (asyncpg.DataError, asyncpg.ProgramLimitExceededError) as exc:
            # prepare() refuses everything known to upset PostgreSQL; should a
            # value still get through, it is the input's fault, not the caller's.
            field = "task" if len(rows) == 1 else "tasks"
            raise InvalidTask(field, f"PostgreSQL refused it ({exc.sqlstate}: {exc})") from None
        # Counted once the statement returned (inside a caller's transaction
        # that may yet roll back: a producer's count, not the table's).
        ENQUEUED.add(r.task for r in results if r.created)
        return results

    def _resolve(
        self, new: NewTask, index: int, count: int, traceparent: str | None = None
    ) -> store.TaskRow:
        if type(new) is not NewTask:
            raise _invalid(index, count, "task", f"must be a NewTask, not {type(new).__name__}")
        task_type = new.type
        registry = self.registry
        # A registered type's name is the registry's; any other must pass the text rule.
        spec = registry.get(task_type) if registry is not None and type(task_type) is str else None
        if spec is None and (
            problem := text_problem(task_type, max_length=MAX_TYPE_LENGTH, min_length=1)
        ):
            raise _invalid(index, count, "type", problem)
        payload = new.payload
        if registry is not None:
            try:
                if spec is None:
                    spec = registry.require(task_type)
                if spec.payload_type is not Any:
                    payload = spec.validate_payload(payload)
            except InvalidTask as exc:
                if count > 1:
                    exc.field = f"tasks[{index}].{exc.field}"
                    exc.args = (f"{exc.field}: {exc.message}",)
                raise
            except RecursionError:
                raise _invalid(index, count, "payload", _TOO_DEEP) from None
        # Encoded once, here: what is checked is what PostgreSQL receives, and
        # what enqueue returns is that JSON decoded, so it equals what get() reads.
        try:
            encoded = _encode_json(payload)
        except RecursionError:
            raise _invalid(index, count, "payload", _TOO_DEEP) from None
        except UnicodeEncodeError:
            raise _invalid(
                index, count, "payload", "strings must be valid Unicode (no lone surrogates)"
            ) from None
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise _invalid(index, count, "payload", f"not JSON-serialisable: {exc}") from None
        # Most payloads are too short to nest deeply and hold no NUL escape:
        # two C-speed tests, and the closer look only for the others.
        if (len(encoded) > _SHORT_JSON or _NUL_ESCAPE in encoded) and (
            problem := json_problem(encoded)
        ):
            raise _invalid(index, count, "payload", problem)

        default_queue, default_priority, default_retries, default_timeout = self._defaults(spec)
        queue = default_queue if new.queue is None else new.queue
        priority = default_priority if new.priority is None else new.priority
        max_retries = default_retries if new.max_retries is None else new.max_retries
        timeout = default_timeout if new.timeout_seconds is None else new.timeout_seconds
        if not (
            type(queue) is str
            and 0 < len(queue) <= MAX_QUEUE_LENGTH
            and queue.isprintable()
            and " " not in queue
            and "," not in queue
            and "\ufffd" not in queue
        ):
            raise _invalid(
                index,
                count,
                "queue",
                queue_problem(queue, max_length=MAX_QUEUE_LENGTH) or "invalid",
            )
        name = new.name
        if not (type(name) is str and len(name) <= MAX_NAME_LENGTH and name.isprintable()):
            raise _invalid(index, count, "name", _text(name, MAX_NAME_LENGTH, 0))
        if type(priority) is not int or not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise _invalid(
                index, count, "priority", f"an integer from -{MAX_PRIORITY} to {MAX_PRIORITY}"
            )
        if type(max_retries) is not int or not 0 <= max_retries <= MAX_RETRIES_LIMIT:
            raise _invalid(index, count, "max_retries", f"an integer from 0 to {MAX_RETRIES_LIMIT}")
        if type(timeout) not in _NUMBER or not (
            math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT_SECONDS
        ):
            raise _invalid(
                index, count, "timeout_seconds", f"a number > 0 and <= {MAX_TIMEOUT_SECONDS:g}"
            )
        run_at = new.run_at
        delay = new.delay_seconds
        run_at_utc = None
        delay_us = 0
        if run_at is not None:
            if delay is not None:
                raise _invalid(index, count, "delay", "give run_at or delay, not both")
            problem = zoned_problem(run_at)
            if problem is not None:
                raise _invalid(index, count, "run_at", problem)
            # In the past (or now): due at the database's now(), so that it
            # does not jump ahead of tasks queued earlier with the same priority.
            # (Aware datetimes compare without leaving the year range, unlike
            # astimezone(UTC) of 9999-12-31T23:59:59-14:00, refused above.)
            if run_at > datetime.now(UTC):
                run_at_utc = run_at.astimezone(UTC)
        elif delay is not None:
            if type(delay) not in _NUMBER or not (
                math.isfinite(delay) and 0 <= delay <= MAX_DELAY_SECONDS
            ):
                raise _invalid(
                    index, count, "delay", f"a number of seconds from 0 to {MAX_DELAY_SECONDS:g}"
                )
            delay_us = round(delay * 1_000_000)
        key = new.idempotency_key
        if key is not None and not (
            type(key) is str and 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()
        ):
            raise _invalid(index, count, "idempotency_key", _text(key, MAX_KEY_LENGTH, 1))
        return store.TaskRow(
            id=uuid7(),
            queue=queue,
            type=task_type,
            name=name,
            payload=msgspec.Raw(encoded),
            priority=priority,
            max_retries=max_retries,
            timeout_seconds=float(timeout),
            run_at=run_at_utc,
            delay_us=delay_us,
            idempotency_key=key,
            traceparent=traceparent,
        )

    @staticmethod
    def _defaults(spec: TaskSpec | None) -> tuple[str, int, int, float]:
        """Queue, priority, max_retries and timeout a task gets when unset."""
        if spec is None:
            return DEFAULT_QUEUE, 0, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_SECONDS
        return (
            spec.queue or DEFAULT_QUEUE,
            0 if spec.priority is None else spec.priority,
            DEFAULT_MAX_RETRIES if spec.max_retries is None else spec.max_retries,
            DEFAULT_TIMEOUT_SECONDS if spec.timeout_seconds is None else spec.timeout_seconds,
        )

    # -- inspecting and managing -----------------------------------------------

    async def get(self, task_id: uuid.UUID | str) -> Task:
        found = _task_id(task_id)
        task = await self._run(store.get_task, found)
        if task is None:
            raise TaskNotFound(found)
        return task

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
    ) -> builtins.list[Task]:
        """Newest first. For the next page pass ``cursor=`` the last task's id.
        ``schedule``: only tasks that schedule fired.
        Raises InvalidTask naming the argument that cannot be a filter."""
        if builtins.type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidTask("limit", f"an integer from 1 to {MAX_PAGE_SIZE}")
        if status is not None and status not in _STATUSES:
            raise InvalidTask("status", f"one of {', '.join(_STATUSES)}")
        if queue is not None and (problem := queue_problem(queue, max_length=MAX_QUEUE_LENGTH)):
            raise InvalidTask("queue", problem)
        if type is not None and (
            problem := text_problem(type, max_length=MAX_TYPE_LENGTH, min_length=1)
        ):
            raise InvalidTask("type", problem)
        for field, value in (("created_after", created_after), ("created_before", created_before)):
            if value is not None and (problem := zoned_problem(value)):
                raise InvalidTask(field, problem)
        before = None
        if cursor is not None:
            before = as_task_id(cursor)
            if before is None:
                raise InvalidTask("cursor", "not a task id")
        if schedule is not None and not schedules.could_exist(schedule):
            return []  # no task can name it, and it must not reach SQL as an error
        return await self._run(
            store.list_tasks,
            status=None if status is None else Status(status),
            queue=queue,
            task_type=type,
            created_after=created_after,
            created_before=created_before,
            before_id=before,
            limit=limit,
            schedule=schedule,
        )

    async def history(self, task_id: uuid.UUID | str) -> builtins.list[TaskEvent]:
        found = _task_id(task_id)
        events = await self._run(store.task_history, found)
        if not events and await self._run(store.get_task, found) is None:
            raise TaskNotFound(found)
        return events

    async def cancel(self, task_id: uuid.UUID | str, *, actor: str = "local") -> Task:
        """Cancel a queued or running task (a running one's worker is told to
        stop its handler, and its outcome is discarded); finished tasks raise
        TaskStateConflict. ``actor`` names who did it in the operator log."""
        found = _task_id(task_id)
        task = await self._run(store.cancel_task, found, actor)
        if task is None:
            current = await self.get(found)
            raise TaskStateConflict(found, current.status, "cancel", "queued or running")
        return task

    async def retry(self, task_id: uuid.UUID | str, *, actor: str = "local") -> Task:
        """Put a failed or cancelled task back in its queue (event task_requeued)."""
        found = _task_id(task_id)
        task = await self._run(store.retry_task, found, actor)
        if task is None:
            current = await self.get(found)
            raise TaskStateConflict(found, current.status, "retry", "failed or cancelled")
        return task

    async def stats(self) -> Stats:
        return (await self._run(store.queue_states, totals=True)).stats()

    # -- operating the queues ----------------------------------------------------

    async def queues(self) -> builtins.list[QueueInfo]:
        """Every queue that has tasks, settings or live workers."""
        return [q.info() for q in (await self._run(store.queue_states, totals=True)).queues]

    async def queue(self, name: str) -> QueueInfo:
        if queue_problem(name, max_length=MAX_QUEUE_LENGTH) is not None:
            raise QueueNotFound(name)  # no queue can have that name
        found = (await self._run(store.queue_states, name, totals=True)).queues
        if not found:
            raise QueueNotFound(name)
        return found[0].info()

    async def _settled(self, name: str) -> QueueInfo:
        """The queue after a change of its settings; one that neither has
        tasks nor keeps settings reads as unpaused, unlimited and empty."""
        found = (await self._run(store.queue_states, name, totals=True)).queues
        if found:
            return found[0].info()
        return QueueInfo(
            name=name,
            paused=False,
            concurrency_limit=None,
            rate_limit=None,
            queued=0,
            due=0,
            scheduled=0,
            running=0,
            succeeded=0,
            failed=0,
            cancelled=0,
            oldest_due_age_seconds=0.0,
            finished_last_minute=0,
            failed_last_minute=0,
            workers=0,
        )

    async def pause(self, queue: str, *, actor: str = "local") -> QueueInfo:
        """No worker claims the queue's tasks from its next claim on (running
        ones finish). Takes effect for every worker within a poll interval."""
        async with self.pool.acquire() as conn:
            await store.set_queue_paused(conn, _queue_name(queue), True, actor)
        return await self._settled(queue)

    async def resume(self, queue: str, *, actor: str = "local") -> QueueInfo:
        async with self.pool.acquire() as conn:
            await store.set_queue_paused(conn, _queue_name(queue), False, actor)
        return await self._settled(queue)

    async def set_limits(
        self,
        queue: str,
        *,
        concurrency: int | None = _NOT_SET,
        rate: tuple[int, float] | RateLimit | None = _NOT_SET,
        actor: str = "local",
    ) -> QueueInfo:
        """At most ``concurrency`` of the queue's tasks running at once, and
        at most ``rate = (n, seconds)`` task starts per rolling period, across
        every worker and host. None removes a limit; leaving one out keeps it."""
        asked: dict[str, Any] = {}
        if concurrency is not _NOT_SET:
            if concurrency is not None and (
                isinstance(concurrency, bool)
                or not isinstance(concurrency, int)
                or not 1 <= concurrency <= MAX_LIMIT
            ):
                raise InvalidArgument(
                    "concurrency_limit", f"an integer from 1 to {MAX_LIMIT}, or null"
                )
            asked["concurrency_limit"] = concurrency
        limit: RateLimit | None = None
        if rate is not _NOT_SET:
            if rate is not None:
                limit = (
                    rate
                    if isinstance(rate, RateLimit)
                    else RateLimit(limit=rate[0], period_seconds=rate[1])
                )
                _check_rate(limit)
            asked["rate_limit"] = None if limit is None else msgspec.to_builtins(limit)
        if not asked:
            raise InvalidArgument("body", "give concurrency_limit, rate_limit or both")
        async with self.pool.acquire() as conn:
            await store.set_queue_limits(
                conn,
                _queue_name(queue),
                concurrency=None if concurrency is _NOT_SET else concurrency,
                change_concurrency=concurrency is not _NOT_SET,
                rate=limit,
                change_rate=rate is not _NOT_SET,
                actor=actor,
                asked=asked,
            )
        return await self._settled(queue)

    async def workers(self) -> builtins.list[WorkerInfo]:
        """The worker registry: running, stopping, stopped and lost workers."""
        return await self._run(store.list_workers)

    async def failures(
        self,
        *,
        queue: str | None = None,
        type: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[FailureGroup]:
        """Failed tasks grouped by queue, type and error, biggest groups first."""
        _check_filter_text(queue, type)
        if since is not None and (problem := zoned_problem(since)):
            raise InvalidArgument("since", problem)
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        return await self._run(
            store.failure_groups, queue=queue, task_type=type, since=since, limit=limit
        )

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
        if (ids is None) == (where is None):
            raise InvalidArgument("ids", "give ids or a filter, not both and not neither")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BULK:
            raise InvalidArgument("limit", f"an integer from 1 to {MAX_BULK}")
        asked: dict[str, Any] = {"limit": limit}
        if ids is not None:
            if len(ids) > MAX_BULK:
                raise InvalidArgument("ids", f"at most {MAX_BULK} per call")
            asked["ids"] = len(ids)
        else:
            assert where is not None
            _check_filter(where)
            asked["filter"] = msgspec.to_builtins(where)
        if after is not None:
            asked["after"] = str(after)
        return await self._run(
            store.bulk_action,
            action,
            ids=ids,
            where=where,
            after=after,
            limit=limit,
            actor=actor,
            asked=asked,
        )

    async def actions(
        self, *, before: int | None = None, limit: int = 100
    ) -> builtins.list[OperatorAction]:
        """The operator log, newest first; ``before`` an id for the next page."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        if before is not None and not 1 <= before < 2**63:
            raise InvalidArgument("before", "an action id")
        return await self._run(store.list_actions, before_id=before, limit=limit)

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
        tail = await EventTail.from_now(self.pool) if after is None else EventTail(self.pool, after)
        while True:
            for event in await tail.poll():
                if matches(event, queue=queue, task_type=type, task_id=task_id):
                    yield event
            await asyncio.sleep(poll_interval)

    # -- schedules -----------------------------------------------------------------

    async def add_schedule(
        self,
        name: str,
        *,
        type: str,
        cron: str | None = None,
        every_seconds: int | None = None,
        timezone: str = "UTC",
        payload: Any = None,
        queue: str | None = None,
        priority: int | None = None,
        max_retries: int | None = None,
        timeout_seconds: float | None = None,
        catch_up: CatchUp | str = CatchUp.LATEST,
        overlap: Overlap | str = Overlap.ALLOW,
    ) -> Schedule:
        """Add a recurring task: ``cron`` (5 fields, 6 with leading seconds, or
        an @alias, in ``timezone``) or ``every_seconds``. Its first slot is the
        first after the database's now. A name in use raises ScheduleConflict;
        a bad field raises InvalidSchedule (InvalidTask) naming it."""
        return await self.create_schedule(
            NewSchedule(
                name=name,
                type=type,
                cron=cron,
                every_seconds=every_seconds,
                timezone=timezone,
                payload={} if payload is None else payload,
                queue=queue,
                priority=priority,
                max_retries=max_retries,
                timeout_seconds=timeout_seconds,
                catch_up=_choice(CatchUp, catch_up, "catch_up"),
                overlap=_choice(Overlap, overlap, "overlap"),
            )
        )

    async def create_schedule(self, new: NewSchedule) -> Schedule:
        timing = self._timing_of(new)
        now = await self._run(store.schedule_now)
        row = self._resolve_schedule(new, schedules.first_after(timing, now))
        created = await self._run(store.insert_schedule, row)
        if created is None:
            raise ScheduleConflict(
                f"schedule {new.name!r} already exists: change it (PATCH) or delete it first"
            )
        return created

    async def define_schedules(self, defined: Sequence[NewSchedule]) -> builtins.list[Schedule]:
        """Make sure schedules defined in code exist as the code says, keeping
        an operator's pause (workers call this at start). Returns the ones
        added or changed."""
        if not defined:
            return []
        now = await self._run(store.schedule_now)
        rows = [
            self._resolve_schedule(new, schedules.first_after(self._timing_of(new), now))
            for new in defined
        ]
        changed = [await self._run(store.define_schedule, row) for row in rows]
        return [schedule for schedule in changed if schedule is not None]

    async def list_schedules(
        self, *, after: str | None = None, limit: int = 100
    ) -> builtins.list[Schedule]:
        """By name; for the next page pass ``after=`` the last one's name."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidSchedule("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        if after is not None and not schedules.could_exist(after):
            raise InvalidSchedule("cursor", "not a schedule name")
        return await self._run(store.list_schedules, after=after, limit=limit)

    async def get_schedule(self, name: str) -> Schedule:
        schedule = await self._run(store.get_schedule, _existing(name))
        if schedule is None:
            raise ScheduleNotFound(name)
        return schedule

    async def schedule_details(
        self, name: str, *, upcoming: int = 5, recent: int = 10
    ) -> ScheduleDetails:
        """The schedule, its next ``upcoming`` slots after now (in its zone and
        in UTC) and its newest ``recent`` ledger rows with their tasks' status."""
        schedule = await self.get_schedule(name)
        now = await self._run(store.schedule_now)
        zone = schedules.zone_of(schedule.timezone)
        timing = schedules.parse_timing(schedule.cron, schedule.every_seconds, schedule.timezone)
        return ScheduleDetails(
            schedule=schedule,
            next_fires=[
                FireTime(local=slot.astimezone(zone), utc=slot)
                for slot in schedules.upcoming(timing, now, upcoming)
            ],
            recent_fires=await self._run(store.recent_schedule_fires, name, limit=recent),
        )

    async def update_schedule(self, name: str, /, **changes: Any) -> Schedule:
        """Change fields of a schedule defined at run time (any of
        NewSchedule's but ``name``; ``None`` task settings mean the type's
        default). Giving ``cron`` drops ``every_seconds`` and the other way
        round. The next slot moves only if the timing changed."""
        unknown = set(changes) - set(NewSchedule.__struct_fields__) | ({"name"} & set(changes))
        if unknown:
            raise InvalidSchedule(sorted(unknown)[0], "not a field that can be changed")
        current = await self.get_schedule(name)
        if current.source == "code":
            raise ScheduleConflict(
                f"schedule {name!r} is defined in code: change it there (workers re-assert it"
                " when they start); pause and resume work here"
            )
        merged = {field: getattr(current, field) for field in NewSchedule.__struct_fields__}
        if changes.get("cron") is not None and "every_seconds" not in changes:
            merged["every_seconds"] = None
        if changes.get("every_seconds") is not None and "cron" not in changes:
            merged["cron"] = None
        merged.update(changes)
        merged["catch_up"] = _choice(CatchUp, merged["catch_up"], "catch_up")
        merged["overlap"] = _choice(Overlap, merged["overlap"], "overlap")
        new = NewSchedule(**merged)
        timing = self._timing_of(new)
        now = await self._run(store.schedule_now)
        updated = await self._run(
            store.update_schedule, self._resolve_schedule(new, schedules.first_after(timing, now))
        )
        if updated is None:  # deleted, or taken over by code, meanwhile
            await self.get_schedule(name)
            raise ScheduleConflict(f"schedule {name!r} is defined in code: change it there")
        return updated

    async def pause_schedule(self, name: str) -> Schedule:
        """Stop it firing until resumed; a paused one raises ScheduleConflict."""
        paused = await self._run(store.pause_schedule, _existing(name))
        if paused is None:
            await self.get_schedule(name)
            raise ScheduleConflict(f"schedule {name!r} is already paused")
        return paused

    async def resume_schedule(self, name: str) -> Schedule:
        """Fire again from the first slot after now (slots passed while paused
        are not fired); one that is not paused raises ScheduleConflict."""
        current = await self.get_schedule(name)
        if not current.paused:
            raise ScheduleConflict(f"schedule {name!r} is not paused")
        timing = schedules.parse_timing(current.cron, current.every_seconds, current.timezone)
        now = await self._run(store.schedule_now)
        resumed = await self._run(store.resume_schedule, name, schedules.first_after(timing, now))
        if resumed is None:
            await self.get_schedule(name)
            raise ScheduleConflict(f"schedule {name!r} is not paused")
        return resumed

    async def trigger_schedule(self, name: str) -> Task:
        """Enqueue one task of the schedule now (paused or not), outside its slots."""
        task = await self._run(store.trigger_schedule, _existing(name), uuid7())
        if task is None:
            raise ScheduleNotFound(name)
        return task

    async def delete_schedule(self, name: str) -> None:
        """Remove it; the tasks it fired and their history stay. A schedule
        defined in code comes back when a worker that defines it starts."""
        if not await self._run(store.delete_schedule, _existing(name)):
            raise ScheduleNotFound(name)

    @staticmethod
    def _timing_of(new: NewSchedule) -> schedules.Timing:
        schedules.validate_name(new.name)
        return schedules.parse_timing(new.cron, new.every_seconds, new.timezone)

    def _resolve_schedule(self, new: NewSchedule, first_slot: datetime) -> store.ScheduleRow:
        """Validate a definition's task settings as a task's (against the
        registry) and fill in the type's defaults."""
        (task,) = self.prepare(
            [
                NewTask(
                    type=new.type,
                    payload=new.payload,
                    queue=new.queue,
                    name=new.name,
                    priority=new.priority,
                    max_retries=new.max_retries,
                    timeout_seconds=new.timeout_seconds,
                )
            ]
        )
        return store.ScheduleRow(
            name=new.name,
            cron=None if new.cron is None else new.cron.strip(),
            every_seconds=new.every_seconds,
            timezone=new.timezone,
            type=task.type,
            payload=task.payload,
            queue=task.queue,
            priority=task.priority,
            max_retries=task.max_retries,
            timeout_seconds=task.timeout_seconds,
            catch_up=new.catch_up,
            overlap=new.overlap,
            next_run_at=first_slot,
        )


def _queue_name(queue: str) -> str:
    problem = queue_problem(queue, max_length=MAX_QUEUE_LENGTH)
    if problem is not None:
        raise InvalidArgument("queue", problem)
    return queue


def _check_filter_text(queue: object, task_type: object, prefix: str = "") -> None:
    if queue is not None and (problem := queue_problem(queue, max_length=MAX_QUEUE_LENGTH)):
        raise InvalidArgument(f"{prefix}queue", problem)
    if task_type is not None and (
        problem := text_problem(task_type, max_length=MAX_TYPE_LENGTH, min_length=1)
    ):
        raise InvalidArgument(f"{prefix}type", problem)


def _check_filter(where: TaskFilter) -> None:
    """A bulk action's filter names something: an empty one (or an empty
    string in it) would quietly match every task."""
    if type(where) is not TaskFilter:
        raise InvalidArgument("filter", "must be a TaskFilter")
    fields = (where.status, where.queue, where.type, where.error, where.created_before)
    if all(value is None for value in fields):
        raise InvalidArgument(
            "filter",
            "name at least one of status, queue, type, error or created_before "
            "(an empty filter would match every task)",
        )
    _check_filter_text(where.queue, where.type, "filter.")
    error = where.error
    if error is not None and (type(error) is not str or not error or "\x00" in error):
        raise InvalidArgument(
            "filter.error", "a failure group's error, as failures() shows it (not empty, no NUL)"
        )
    if where.created_before is not None and (problem := zoned_problem(where.created_before)):
        raise InvalidArgument("filter.created_before", problem)


def _check_rate(rate: RateLimit) -> None:
    if isinstance(rate.limit, bool) or not isinstance(rate.limit, int):
        raise InvalidArgument("rate_limit.limit", "must be an integer")
    if not 1 <= rate.limit <= MAX_LIMIT:
        raise InvalidArgument("rate_limit.limit", f"must be between 1 and {MAX_LIMIT}")
    period = rate.period_seconds
    if isinstance(period, bool) or not isinstance(period, int | float):
        raise InvalidArgument("rate_limit.period_seconds", "must be a number")
    if not (math.isfinite(period) and 0.001 <= period <= 86400 * 7):
        raise InvalidArgument("rate_limit.period_seconds", "must be > 0 and at most 7 days")


_STATUSES = tuple(status.value for status in Status)


def _task_id(value: object) -> uuid.UUID:
    """A malformed id is a task that cannot exist; something else entirely is a mistake."""
    found = as_task_id(value)
    if found is not None:
        return found
    if isinstance(value, str):
        raise TaskNotFound(repr(value[:64]))
    raise InvalidTask("id", f"must be a UUID or its text, not {type(value).__name__}")


def _text(value: object, max_length: int, min_length: int) -> str:
    return text_problem(value, max_length=max_length, min_length=min_length) or "invalid"


def _invalid(index: int, count: int, field: str, message: str) -> InvalidTask:
    """InvalidTask naming ``field``, as ``tasks[i].field`` in a batch."""
    return InvalidTask(field if count == 1 else f"tasks[{index}].{field}", message)


def _existing(name: str) -> str:
    # A name no schedule can have (a NUL byte, say) is not looked up at all:
    # it is simply not found, and never reaches the database as an error.
    if not schedules.could_exist(name):
        raise ScheduleNotFound(name)
    return name


E = TypeVar("E", CatchUp, Overlap)


def _choice(kind: builtins.type[E], value: E | str, field: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise InvalidSchedule(
            field, f"one of {', '.join(repr(k.value) for k in kind)}, not {str(value)[:50]!r}"
        ) from None
