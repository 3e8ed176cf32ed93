"""``TaskQueue``: the Python API for producers and operators, also used by the
REST API. It validates new tasks against the registry, fills in defaults and
calls ``store``; it runs no SQL itself."""

from __future__ import annotations

import builtins
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
import msgspec

from taskqueue import db, schedules, store
from taskqueue.errors import InvalidTask, TaskNotFound, TaskStateConflict
from taskqueue.models import (
    CatchUp,
    Enqueued,
    FireTime,
    NewSchedule,
    NewTask,
    Overlap,
    Schedule,
    ScheduleDetails,
    Stats,
    Status,
    Task,
    TaskEvent,
    uuid7,
)
from taskqueue.registry import Registry, TaskSpec, load_registry
from taskqueue.schedules import InvalidSchedule, ScheduleConflict, ScheduleNotFound

DEFAULT_QUEUE = "default"
DEFAULT_MAX_RETRIES = 3
DEFAULT_TIMEOUT_SECONDS = 30.0

# Bounds that keep one producer from hurting everyone else.
MAX_NAME_LENGTH = 200
MAX_QUEUE_LENGTH = 100
MAX_KEY_LENGTH = 200
MAX_PRIORITY = 1000
MAX_RETRIES_LIMIT = 100
MAX_TIMEOUT_SECONDS = 86400.0
MAX_PAGE_SIZE = 1000
MAX_DELAY_SECONDS = 10 * 365 * 86400.0

_NOT_SET: Any = msgspec.UNSET
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
        return await self.insert(self.prepare(tasks), connection=connection)

    def prepare(self, tasks: Sequence[NewTask]) -> builtins.list[store.TaskRow]:
        """Validate new tasks and fill in every default, without touching the
        database; raises InvalidTask naming the field (``tasks[i].field`` in a batch)."""
        return [self._resolve(task, index, len(tasks)) for index, task in enumerate(tasks)]

    async def insert(
        self, rows: Sequence[store.TaskRow], *, connection: store.Connection | None = None
    ) -> builtins.list[Enqueued]:
        """Insert prepared tasks in one statement."""
        if connection is not None:
            return await store.enqueue_tasks(connection, rows)
        return await self._run(store.enqueue_tasks, rows)

    def _resolve(self, new: NewTask, index: int, count: int) -> store.TaskRow:
        def invalid(field: str, message: str) -> InvalidTask:
            return InvalidTask(field if count == 1 else f"tasks[{index}].{field}", message)

        spec = None
        payload = new.payload
        if self.registry is not None:
            try:
                spec = self.registry.require(new.type)
                payload = spec.validate_payload(payload)
            except InvalidTask as exc:
                if count > 1:
                    exc.field = f"tasks[{index}].{exc.field}"
                    exc.args = (f"{exc.field}: {exc.message}",)
                raise
        elif not new.type:
            raise invalid("type", "must not be empty")

        default_queue, default_priority, default_retries, default_timeout = self._defaults(spec)
        queue = new.queue or default_queue
        priority = default_priority if new.priority is None else new.priority
        max_retries = default_retries if new.max_retries is None else new.max_retries
        timeout = default_timeout if new.timeout_seconds is None else new.timeout_seconds
        if len(queue) > MAX_QUEUE_LENGTH or "," in queue or queue.strip() != queue:
            raise invalid("queue", f"at most {MAX_QUEUE_LENGTH} characters, no commas or spaces")
        if len(new.name) > MAX_NAME_LENGTH:
            raise invalid("name", f"at most {MAX_NAME_LENGTH} characters")
        if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise invalid("priority", f"must be between -{MAX_PRIORITY} and {MAX_PRIORITY}")
        if not 0 <= max_retries <= MAX_RETRIES_LIMIT:
            raise invalid("max_retries", f"must be between 0 and {MAX_RETRIES_LIMIT}")
        if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT_SECONDS):
            raise invalid("timeout_seconds", f"must be > 0 and <= {MAX_TIMEOUT_SECONDS:g}")
        if new.run_at is not None and new.delay_seconds is not None:
            raise invalid("delay", "give run_at or delay, not both")
        if new.run_at is not None and new.run_at.tzinfo is None:
            raise invalid("run_at", "must include a time zone")
        if new.delay_seconds is not None and not (
            math.isfinite(new.delay_seconds) and 0 <= new.delay_seconds <= MAX_DELAY_SECONDS
        ):
            raise invalid("delay", f"must be between 0 and {MAX_DELAY_SECONDS:g} seconds")
        key = new.idempotency_key
        if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
            raise invalid("idempotency_key", f"1 to {MAX_KEY_LENGTH} characters")
        return store.TaskRow(
            id=uuid7(),
            queue=queue,
            type=new.type,
            name=new.name,
            payload=payload,
            priority=priority,
            max_retries=max_retries,
            timeout_seconds=float(timeout),
            run_at=None if new.run_at is None else new.run_at.astimezone(UTC),
            delay_us=0 if new.delay_seconds is None else round(new.delay_seconds * 1_000_000),
            idempotency_key=key,
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

    async def get(self, task_id: uuid.UUID) -> Task:
        task = await self._run(store.get_task, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list(
        self,
        *,
        status: Status | str | None = None,
        queue: str | None = None,
        type: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        cursor: uuid.UUID | None = None,
        limit: int = 100,
        schedule: str | None = None,
    ) -> builtins.list[Task]:
        """Newest first. For the next page pass ``cursor=`` the last task's id.
        ``schedule``: only tasks that schedule fired."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidTask("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        if schedule is not None and not schedules.could_exist(schedule):
            return []  # no task can name it, and it must not reach SQL as an error
        return await self._run(
            store.list_tasks,
            status=None if status is None else Status(status),
            queue=queue,
            task_type=type,
            created_after=created_after,
            created_before=created_before,
            before_id=cursor,
            limit=limit,
            schedule=schedule,
        )

    async def history(self, task_id: uuid.UUID) -> builtins.list[TaskEvent]:
        events = await self._run(store.task_history, task_id)
        if not events and await self._run(store.get_task, task_id) is None:
            raise TaskNotFound(task_id)
        return events

    async def cancel(self, task_id: uuid.UUID) -> Task:
        """Cancel a queued task; running or finished tasks raise TaskStateConflict."""
        task = await self._run(store.cancel_task, task_id)
        if task is None:
            current = await self.get(task_id)
            raise TaskStateConflict(task_id, current.status, "cancel", "queued")
        return task

    async def retry(self, task_id: uuid.UUID) -> Task:
        """Put a failed or cancelled task back in its queue (event task_requeued)."""
        task = await self._run(store.retry_task, task_id)
        if task is None:
            current = await self.get(task_id)
            raise TaskStateConflict(task_id, current.status, "retry", "failed or cancelled")
        return task

    async def stats(self) -> Stats:
        return await self._run(store.stats)

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
