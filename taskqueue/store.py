"""The only module that runs SQL. Every statement lives in queries/*.sql,
one per file, loaded once; this module binds parameters and shapes rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from taskqueue.models import (
    SCHEDULE_FIELDS,
    TASK_FIELDS,
    BulkResult,
    CatchUp,
    ClaimedTask,
    Enqueued,
    FailureGroup,
    OperatorAction,
    Outcome,
    Overlap,
    QueueInfo,
    QueueStats,
    RateLimit,
    Schedule,
    ScheduleFire,
    Stats,
    Status,
    StreamEvent,
    Task,
    TaskEvent,
    TaskFilter,
    WorkerInfo,
)

NOTIFY_CHANNEL = "taskqueue"
CONTROL_CHANNEL = "taskqueue_control"  # messages to one worker: {"worker", "cancel"}
_encode_json = msgspec.json.Encoder().encode

# A pool and a connection both run statements; a connection also joins the
# caller's transaction.
Connection = asyncpg.Connection | PoolConnectionProxy
Executor = Connection | asyncpg.Pool


@cache
def query(name: str) -> str:
    return resources.files("taskqueue.queries").joinpath(f"{name}.sql").read_text()


class TaskRow(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """A new task with every default already resolved, ready to insert."""

    id: uuid.UUID
    queue: str
    type: str
    name: str
    payload: Any  # a JSON-able value or msgspec.Raw holding JSON text
    priority: int
    max_retries: int
    timeout_seconds: float
    run_at: datetime | None  # in UTC; None: the database's now() + delay_us
    delay_us: int  # microseconds, so that both sides compute the same run_at
    idempotency_key: str | None
    # W3C trace context of the enqueuing span; None (left out of the JSON the
    # bulk statement reads, so costing nothing) unless OpenTelemetry is tracing.
    traceparent: str | None = None


def _task(record: asyncpg.Record) -> Task:
    fields = {field: record[field] for field in TASK_FIELDS}
    fields["status"] = Status(fields["status"])
    return Task(**fields)


async def enqueue_tasks(conn: Executor, rows: Sequence[TaskRow]) -> list[Enqueued]:
    """Insert ``rows`` in one statement; rows whose idempotency key is taken
    come back as the task that owns the key, with ``created=False``."""
    if not rows:
        return []
    if len(rows) == 1:
        record = await conn.fetchrow(query("enqueue_task"), *_task_row_params(rows[0]))
    else:
        record = await conn.fetchrow(query("enqueue_tasks"), _encode_json(rows))
    assert record is not None  # the statement always returns one row
    # The statement returns the ids it inserted and its now(), not a row per
    # task: every other column is what we sent, and decoding 1,000 rows would
    # cost the client more than the database spends inserting them.
    inserted_ids: list[uuid.UUID] = record["ids"] or []
    created_at: datetime = record["created_at"]
    if len(inserted_ids) == len(rows):
        return [Enqueued(_new_task(row, created_at), True) for row in rows]
    inserted = set(inserted_ids)
    keys = [r.idempotency_key for r in rows if r.id not in inserted and r.idempotency_key]
    found = await conn.fetch(query("find_tasks_by_idempotency_key"), keys)
    existing = {rec["idempotency_key"]: _task(rec) for rec in found}
    results: list[Enqueued] = []
    for row in rows:
        if row.id in inserted:
            results.append(Enqueued(_new_task(row, created_at), True))
            continue
        owner = existing.get(row.idempotency_key or "")
        if owner is None:  # pragma: no cover - only if the owner was deleted meanwhile
            raise RuntimeError(f"task {row.id} was neither inserted nor found by its key")
        results.append(Enqueued(owner, False))
    return results


def _task_row_params(row: TaskRow) -> tuple[Any, ...]:
    return (
        row.id,
        row.queue,
        row.type,
        row.name,
        row.payload,
        row.priority,
        row.max_retries,
        row.timeout_seconds,
        row.run_at,
        row.delay_us,
        row.idempotency_key,
        row.traceparent,
    )


def _new_task(row: TaskRow, created_at: datetime) -> Task:
    # Built from what we sent and the statement's now(): the same values the
    # row holds (created_at defaults to now(); run_at is now() + delay_us).
    # The payload stays the JSON that was sent (msgspec.Raw): the REST API
    # writes it back out as it is, and TaskQueue.submit decodes it for Python.
    payload = row.payload
    run_at = row.run_at
    if run_at is None:
        run_at = created_at + timedelta(microseconds=row.delay_us) if row.delay_us else created_at
    return Task(
        id=row.id,
        queue=row.queue,
        type=row.type,
        name=row.name,
        payload=payload,
        status=Status.QUEUED,
        priority=row.priority,
        attempts=0,
        max_retries=row.max_retries,
        timeout_seconds=row.timeout_seconds,
        run_at=run_at,
        locked_by=None,
        locked_until=None,
        idempotency_key=row.idempotency_key,
        result=None,
        last_error=None,
        created_at=created_at,
        started_at=None,
        completed_at=None,
    )


async def claim_tasks(
    conn: Executor,
    queues: Sequence[str],
    limit: int,
    worker_id: str,
    lease_seconds: float,
    *,
    types: Sequence[str],
    governed: bool = False,
    statement_timeout: float | None = None,
) -> list[ClaimedTask]:
    """Claim up to ``limit`` due tasks of ``types`` (the ones the worker has
    handlers for) from ``queues``, under a lease of ``lease_seconds``.
    ``governed``: some of the queues have settings (pause, limits), which
    only claim_governed_tasks.sql applies; claim_tasks.sql skips them."""
    records = await conn.fetch(
        query("claim_governed_tasks" if governed else "claim_tasks"),
        list(queues),
        limit,
        worker_id,
        lease_seconds,
        list(types),
        timeout=statement_timeout,
    )
    return [
        ClaimedTask(
            id=r["id"],
            queue=r["queue"],
            type=r["type"],
            payload=r["payload"],
            priority=r["priority"],
            attempt=r["attempts"],
            max_retries=r["max_retries"],
            timeout_seconds=r["timeout_seconds"],
            run_at=r["run_at"],
            traceparent=r["traceparent"],
        )
        for r in records
    ]


async def complete_tasks(
    conn: Executor, outcomes: Sequence[Outcome], worker_id: str
) -> set[uuid.UUID]:
    """Persist outcomes in one fenced statement; returns the ids that were
    still this worker's. The others were rescued meanwhile and are untouched."""
    if not outcomes:
        return set()
    records = await conn.fetch(
        query("complete_tasks"),
        [o.task_id for o in outcomes],
        [o.attempt for o in outcomes],
        [o.kind.value for o in outcomes],
        [o.error for o in outcomes],
        [o.result for o in outcomes],
        [o.retry_delay for o in outcomes],
        [o.reason for o in outcomes],
        worker_id,
    )
    return {r["id"] for r in records}


async def extend_leases(
    conn: Executor,
    task_ids: Sequence[uuid.UUID],
    worker_id: str,
    lease_seconds: float,
    *,
    statement_timeout: float | None = None,
) -> set[uuid.UUID]:
    if not task_ids:
        return set()
    records = await conn.fetch(
        query("extend_leases"),
        list(task_ids),
        worker_id,
        lease_seconds,
        timeout=statement_timeout,
    )
    return {r["id"] for r in records}


async def find_unhandled_types(
    conn: Executor, queue: str, known_types: Sequence[str], *, limit: int = 50
) -> list[str]:
    """Types of tasks queued in ``queue`` that are not among ``known_types``."""
    records = await conn.fetch(query("find_unhandled_types"), queue, list(known_types), limit)
    return [r["type"] for r in records]


async def rescue_expired(
    conn: Executor, rescuer_id: str, *, limit: int = 1000, now: datetime | None = None
) -> list[tuple[uuid.UUID, Status]]:
    records = await conn.fetch(query("rescue_expired"), now, limit, rescuer_id)
    return [(r["id"], Status(r["status"])) for r in records]


async def get_task(conn: Executor, task_id: uuid.UUID) -> Task | None:
    record = await conn.fetchrow(query("get_task"), task_id)
    return None if record is None else _task(record)


async def list_tasks(
    conn: Executor,
    *,
    status: Status | None = None,
    queue: str | None = None,
    task_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    before_id: uuid.UUID | None = None,
    limit: int = 100,
    schedule: str | None = None,
) -> list[Task]:
    records = await conn.fetch(
        query("list_tasks"),
        None if status is None else status.value,
        queue,
        task_type,
        created_after,
        created_before,
        before_id,
        limit,
        schedule,
    )
    return [_task(r) for r in records]


async def task_history(conn: Executor, task_id: uuid.UUID) -> list[TaskEvent]:
    records = await conn.fetch(query("task_history"), task_id)
    return [TaskEvent(**{**dict(r.items()), "status": Status(r["status"])}) for r in records]


async def cancel_task(conn: Executor, task_id: uuid.UUID, actor: str = "local") -> Task | None:
    """The cancelled task, or None when it was not queued or running (or does not exist)."""
    record = await conn.fetchrow(query("cancel_task"), task_id, actor)
    return None if record is None else _task(record)


async def retry_task(conn: Executor, task_id: uuid.UUID, actor: str = "local") -> Task | None:
    """The requeued task, or None when it was not failed/cancelled (or does not exist)."""
    record = await conn.fetchrow(query("retry_task"), task_id, actor)
    return None if record is None else _task(record)


async def stats(conn: Executor) -> Stats:
    records = await conn.fetch(query("queue_stats"))
    per_queue = [
        QueueStats(
            queue=r["queue"],
            total_tasks=r["total_tasks"],
            queued_tasks=r["queued_tasks"],
            due_tasks=r["due_tasks"],
            running_tasks=r["running_tasks"],
            succeeded_tasks=r["succeeded_tasks"],
            failed_tasks=r["failed_tasks"],
            cancelled_tasks=r["cancelled_tasks"],
            avg_retry_count=float(r["retries"]) / r["total_tasks"],
            tasks_with_retries=r["tasks_with_retries"],
        )
        for r in records
    ]
    total = sum(q.total_tasks for q in per_queue)
    retries = sum(float(r["retries"]) for r in records)

    def total_of(attr: str) -> int:
        return sum(int(getattr(q, attr)) for q in per_queue)

    return Stats(
        total_tasks=total,
        queued_tasks=total_of("queued_tasks"),
        due_tasks=total_of("due_tasks"),
        running_tasks=total_of("running_tasks"),
        succeeded_tasks=total_of("succeeded_tasks"),
        failed_tasks=total_of("failed_tasks"),
        cancelled_tasks=total_of("cancelled_tasks"),
        avg_retry_count=retries / total if total else 0.0,
        tasks_with_retries=total_of("tasks_with_retries"),
        queues=per_queue,
    )


async def audit_trails(
    conn: Connection, since: datetime | None, *, batch: int = 5000
) -> AsyncIterator[asyncpg.Record]:
    """Stream every event trail (see audit_trails.sql) through a cursor;
    ``conn`` must be a connection in a transaction."""
    async for record in conn.cursor(query("audit_trails"), since, prefetch=batch):
        yield record


async def register_worker(
    conn: Executor,
    worker_id: str,
    *,
    host: str,
    pid: int,
    queues: Sequence[str],
    types: Sequence[str],
    concurrency: int,
    version: str,
    heartbeat_seconds: float,
) -> None:
    await conn.execute(
        query("register_worker"),
        worker_id,
        host,
        pid,
        list(queues),
        list(types),
        concurrency,
        version,
        heartbeat_seconds,
    )


async def heartbeat_worker(
    conn: Executor, worker_id: str, in_flight: int, state: str, prune_after: float
) -> None:
    await conn.execute(query("heartbeat_worker"), worker_id, in_flight, state, prune_after)


async def ping(conn: Executor) -> None:
    await conn.execute(query("ping"))


async def applied_migrations(conn: Executor) -> list[str]:
    """Migration ids yoyo has recorded; empty when yoyo never ran here."""
    try:
        records = await conn.fetch(query("applied_migrations"))
    except asyncpg.UndefinedTableError:
        return []
    return [r["migration_id"] for r in records]


async def listen(conn: Connection, callback: Callable[[str], None]) -> None:
    """LISTEN for enqueue wakeups; ``callback`` gets the payload (queue names)."""

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        callback(str(payload))

    await conn.add_listener(NOTIFY_CHANNEL, on_notify)


async def listen_control(conn: Connection, callback: Callable[[str], None]) -> None:
    """LISTEN for control messages (JSON) addressed to workers."""

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        callback(str(payload))

    await conn.add_listener(CONTROL_CHANNEL, on_notify)


# -- operating the queue ---------------------------------------------------------


async def set_queue_paused(conn: Connection, queue: str, paused: bool, actor: str) -> None:
    async with conn.transaction():
        await conn.execute(query("set_queue_paused"), queue, paused, actor)
        await conn.execute(query("drop_empty_queue_settings"), queue)


async def queues_with_settings(conn: Executor, queues: Sequence[str]) -> set[str]:
    return {r["name"] for r in await conn.fetch(query("queues_with_settings"), list(queues))}


async def set_queue_limits(
    conn: Connection,
    queue: str,
    *,
    concurrency: int | None,
    change_concurrency: bool,
    rate: RateLimit | None,
    change_rate: bool,
    actor: str,
    asked: Any,
) -> None:
    """Change a queue's limits and count its running tasks afresh, in one
    transaction (the first statement locks the row the recount relies on)."""
    async with conn.transaction():
        await conn.execute(
            query("set_queue_limits"),
            queue,
            change_concurrency,
            concurrency,
            change_rate,
            None if rate is None else rate.limit,
            None if rate is None else rate.period_seconds,
            actor,
            asked,
        )
        await conn.execute(query("recount_running"), [queue])
        await conn.execute(query("drop_empty_queue_settings"), queue)


async def recount_running(conn: Connection) -> dict[str, int]:
    """Count the running tasks of every limited queue afresh, under their
    locks: what a claim raced with a limit being set is put right."""
    async with conn.transaction():
        if not await conn.fetch(query("lock_limited_queues")):
            return {}
        records = await conn.fetch(query("recount_running"), None)
    return {r["name"]: r["running"] for r in records}


def _queue_info(r: asyncpg.Record) -> QueueInfo:
    rate = None
    if r["rate_limit"] is not None:
        rate = RateLimit(limit=r["rate_limit"], period_seconds=r["rate_period_seconds"])
    return QueueInfo(
        name=r["name"],
        paused=r["paused"],
        concurrency_limit=r["concurrency_limit"],
        rate_limit=rate,
        queued=r["queued"],
        due=r["due"],
        scheduled=r["scheduled"],
        running=r["running"],
        succeeded=r["succeeded"],
        failed=r["failed"],
        cancelled=r["cancelled"],
        oldest_due_age_seconds=r["oldest_due_age_seconds"],
        finished_last_minute=r["finished_last_minute"],
        failed_last_minute=r["failed_last_minute"],
        workers=r["workers"],
    )


async def queue_overview(conn: Executor, queue: str | None = None) -> list[QueueInfo]:
    return [_queue_info(r) for r in await conn.fetch(query("queue_overview"), queue)]


async def list_workers(conn: Executor) -> list[WorkerInfo]:
    return [WorkerInfo(**dict(r.items())) for r in await conn.fetch(query("list_workers"))]


async def failure_groups(
    conn: Executor,
    *,
    queue: str | None = None,
    task_type: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[FailureGroup]:
    records = await conn.fetch(query("failure_groups"), queue, task_type, since, limit)
    return [FailureGroup(**dict(r.items())) for r in records]


BULK_ACTIONS = {"retry": "retry_tasks", "cancel": "cancel_tasks", "delete": "delete_tasks"}


async def bulk_action(
    conn: Executor,
    action: str,
    *,
    ids: Sequence[uuid.UUID] | None,
    where: TaskFilter | None,
    after: uuid.UUID | None,
    limit: int,
    actor: str,
    asked: Any,
) -> BulkResult:
    """Retry, cancel or delete a chunk of tasks in one statement (see
    retry_tasks.sql, cancel_tasks.sql, delete_tasks.sql)."""
    where = where or TaskFilter()
    record = await conn.fetchrow(
        query(BULK_ACTIONS[action]),
        None if ids is None else list(ids),
        None if where.status is None else where.status.value,
        where.queue,
        where.type,
        where.error,
        where.created_before,
        after,
        limit,
        actor,
        asked,
    )
    assert record is not None  # the statement always returns its summary
    more = record["matched"] == limit and record["last_id"] is not None
    return BulkResult(
        matched=record["matched"],
        changed=record["changed"],
        next=record["last_id"] if more else None,
    )


async def list_actions(
    conn: Executor, *, before_id: int | None = None, limit: int = 100
) -> list[OperatorAction]:
    records = await conn.fetch(query("list_actions"), before_id, limit)
    return [OperatorAction(**dict(r.items())) for r in records]


async def events_after(conn: Executor, after_id: int, limit: int = 1000) -> list[StreamEvent]:
    records = await conn.fetch(query("events_after"), after_id, limit)
    return [StreamEvent(**dict(r.items())) for r in records]


async def last_event_id(conn: Executor) -> int:
    return int(await conn.fetchval(query("last_event_id")))


async def events_by_id(conn: Executor, ids: Sequence[int]) -> list[StreamEvent]:
    records = await conn.fetch(query("events_by_id"), list(ids))
    return [StreamEvent(**dict(r.items())) for r in records]


async def actions_after(conn: Executor, after_id: int) -> list[OperatorAction]:
    records = await conn.fetch(query("actions_after"), after_id)
    return [OperatorAction(**dict(r.items())) for r in records]


async def last_action_id(conn: Executor) -> int:
    return int(await conn.fetchval(query("last_action_id")))


async def health_snapshot(conn: Executor) -> tuple[int, int]:
    """(live workers, due queued tasks)."""
    record = await conn.fetchrow(query("health_snapshot"))
    assert record is not None
    return int(record["workers"]), int(record["queue_depth"])


# -- schedules ---------------------------------------------------------------


class ScheduleRow(msgspec.Struct, kw_only=True, gc=False):
    """A schedule's definition with every default resolved, ready to store."""

    name: str
    cron: str | None
    every_seconds: int | None
    timezone: str
    type: str
    payload: Any
    queue: str
    priority: int
    max_retries: int
    timeout_seconds: float
    catch_up: CatchUp
    overlap: Overlap
    next_run_at: datetime  # its first slot: used when it is new or its timing changed


class DueSchedule(msgspec.Struct, kw_only=True, gc=False):
    """What the firing loop needs to plan one due schedule's slots."""

    name: str
    cron: str | None
    every_seconds: int | None
    timezone: str
    catch_up: CatchUp
    overlap: Overlap
    next_run_at: datetime
    now: datetime  # the database's clock (or the fixed time a test passed)


class Fired(msgspec.Struct, kw_only=True, gc=False):
    """What one firing statement did."""

    advanced: bool  # False: another worker fired these slots, or the schedule changed
    fired: list[datetime]
    skipped: list[datetime]  # overlap = 'skip' with the previous task still live
    already_recorded: int  # slots the ledger held already (next_run_at was moved back)


def _schedule(record: asyncpg.Record) -> Schedule:
    fields = {field: record[field] for field in SCHEDULE_FIELDS}
    fields["catch_up"] = CatchUp(fields["catch_up"])
    fields["overlap"] = Overlap(fields["overlap"])
    return Schedule(**fields)


def _schedule_params(row: ScheduleRow) -> tuple[Any, ...]:
    return (
        row.name,
        row.cron,
        row.every_seconds,
        row.timezone,
        row.type,
        row.payload,
        row.queue,
        row.priority,
        row.max_retries,
        row.timeout_seconds,
        row.catch_up.value,
        row.overlap.value,
        row.next_run_at,
    )


async def schedule_now(conn: Executor, now: datetime | None = None) -> datetime:
    """The database's clock (``now`` itself when given)."""
    value: datetime = await conn.fetchval(query("schedule_now"), now)
    return value


async def insert_schedule(conn: Executor, row: ScheduleRow) -> Schedule | None:
    """The new schedule, or None when the name is taken."""
    record = await conn.fetchrow(query("insert_schedule"), *_schedule_params(row))
    return None if record is None else _schedule(record)


async def define_schedule(conn: Executor, row: ScheduleRow) -> Schedule | None:
    """Add or update a schedule defined in code, keeping its pause (and its
    next slot while the timing is unchanged); None when it already matched."""
    record = await conn.fetchrow(query("define_schedule"), *_schedule_params(row))
    return None if record is None else _schedule(record)


async def update_schedule(conn: Executor, row: ScheduleRow) -> Schedule | None:
    """The changed schedule, or None when it is missing or defined in code."""
    record = await conn.fetchrow(query("update_schedule"), *_schedule_params(row))
    return None if record is None else _schedule(record)


async def get_schedule(conn: Executor, name: str) -> Schedule | None:
    record = await conn.fetchrow(query("get_schedule"), name)
    return None if record is None else _schedule(record)


async def list_schedules(
    conn: Executor, *, after: str | None = None, limit: int = 100
) -> list[Schedule]:
    records = await conn.fetch(query("list_schedules"), after, limit)
    return [_schedule(r) for r in records]


async def delete_schedule(conn: Executor, name: str) -> bool:
    return await conn.fetchval(query("delete_schedule"), name) is not None


async def pause_schedule(conn: Executor, name: str) -> Schedule | None:
    """The paused schedule, or None when it is missing or already paused."""
    record = await conn.fetchrow(query("pause_schedule"), name)
    return None if record is None else _schedule(record)


async def resume_schedule(conn: Executor, name: str, next_run_at: datetime) -> Schedule | None:
    """The resumed schedule, or None when it is missing or not paused."""
    record = await conn.fetchrow(query("resume_schedule"), name, next_run_at)
    return None if record is None else _schedule(record)


async def trigger_schedule(conn: Executor, name: str, task_id: uuid.UUID) -> Task | None:
    """The task enqueued by hand, or None when there is no such schedule."""
    record = await conn.fetchrow(query("trigger_schedule"), name, task_id)
    return None if record is None else _task(record)


async def recent_schedule_fires(
    conn: Executor, name: str, *, limit: int = 10
) -> list[ScheduleFire]:
    records = await conn.fetch(query("recent_schedule_fires"), name, limit)
    return [
        ScheduleFire(
            id=r["id"],
            slot=r["slot"],
            at=r["at"],
            outcome=r["outcome"],
            task_id=r["task_id"],
            task_status=None if r["task_status"] is None else Status(r["task_status"]),
            detail=r["detail"],
        )
        for r in records
    ]


async def due_schedules(
    conn: Executor, *, now: datetime | None = None, limit: int = 100
) -> list[DueSchedule]:
    """Unpaused schedules with a slot due at ``now`` (the database's clock
    when None), oldest first."""
    records = await conn.fetch(query("due_schedules"), now, limit)
    return [
        DueSchedule(
            name=r["name"],
            cron=r["cron"],
            every_seconds=r["every_seconds"],
            timezone=r["timezone"],
            catch_up=CatchUp(r["catch_up"]),
            overlap=Overlap(r["overlap"]),
            next_run_at=r["next_run_at"],
            now=r["now"],
        )
        for r in records
    ]


async def fire_schedule(
    conn: Executor,
    name: str,
    *,
    expected: datetime,
    next_run_at: datetime,
    slots: Sequence[datetime],
    task_ids: Sequence[uuid.UUID],
    missed: Any = None,
    worker_id: str | None = None,
) -> Fired:
    """Fire ``slots`` of a schedule whose next_run_at is still ``expected``
    (see fire_schedule.sql); ``missed`` (JSON) describes slots left unfired."""
    record = await conn.fetchrow(
        query("fire_schedule"),
        name,
        expected,
        next_run_at,
        list(slots),
        list(task_ids),
        missed,
        worker_id,
    )
    assert record is not None  # the statement always returns one row
    return Fired(
        advanced=record["advanced"] > 0,
        fired=list(record["fired"]),
        skipped=list(record["skipped"]),
        already_recorded=record["already_recorded"],
    )


# -- the dashboard -----------------------------------------------------------


class DashboardQueue(msgspec.Struct, kw_only=True):
    """A queue as the dashboard lists it (read from partial indexes only)."""

    name: str
    paused: bool
    concurrency_limit: int | None
    rate_limit: RateLimit | None
    queued: int
    due: int
    running: int
    failed: int
    oldest_due_age_seconds: float
    workers: int


class MinuteCounts(msgspec.Struct, kw_only=True, frozen=True):
    minute: datetime
    succeeded: int
    failed: int
    retried: int


class FailureGlance(msgspec.Struct, kw_only=True):
    queue: str
    type: str
    count: int
    last_failed_at: datetime
    sample_task_id: uuid.UUID
    error: str


async def dashboard_queues(conn: Executor, queue: str | None = None) -> list[DashboardQueue]:
    records = await conn.fetch(query("dashboard_queues"), queue)
    return [
        DashboardQueue(
            name=r["name"],
            paused=r["paused"],
            concurrency_limit=r["concurrency_limit"],
            rate_limit=None
            if r["rate_limit"] is None
            else RateLimit(limit=r["rate_limit"], period_seconds=r["rate_period_seconds"]),
            queued=r["queued"],
            due=r["due"],
            running=r["running"],
            failed=r["failed"],
            oldest_due_age_seconds=r["oldest_due_age_seconds"],
            workers=r["workers"],
        )
        for r in records
    ]


async def dashboard_total(conn: Executor) -> int:
    return int(await conn.fetchval(query("dashboard_total")))


async def dashboard_cancelled(conn: Executor) -> int:
    return int(await conn.fetchval(query("dashboard_cancelled")))


async def dashboard_throughput(
    conn: Executor, since: datetime, until: datetime | None = None
) -> list[MinuteCounts]:
    """Per minute from ``since`` until ``until`` (None: now)."""
    records = await conn.fetch(query("dashboard_throughput"), since, until)
    return [MinuteCounts(**dict(r.items())) for r in records]


async def dashboard_failures(conn: Executor, limit: int) -> list[FailureGlance]:
    records = await conn.fetch(query("dashboard_failures"), limit)
    return [FailureGlance(**dict(r.items())) for r in records]


async def database_now(conn: Executor) -> datetime:
    value: datetime = await conn.fetchval(query("schedule_now"), None)
    return value


async def search_tasks(
    conn: Executor,
    text: str,
    *,
    status: Status | None = None,
    queue: str | None = None,
    task_type: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    before_id: uuid.UUID | None = None,
    limit: int = 50,
) -> list[Task]:
    """Tasks whose name starts with ``text`` or whose idempotency key is ``text``."""
    records = await conn.fetch(
        query("search_tasks"),
        text,
        None if status is None else status.value,
        queue,
        task_type,
        created_after,
        created_before,
        before_id,
        limit,
    )
    return [_task(r) for r in records]


# -- observability -------------------------------------------------------------


async def metrics_snapshot(
    conn: Executor,
) -> tuple[int, list[tuple[str, int, int, int, float]]]:
    """(live workers, [(queue, due, scheduled, running, oldest due age in
    seconds)] for every queue with tasks queued or running, live workers or
    settings)."""
    records = await conn.fetch(query("metrics_snapshot"))
    workers = int(records[0]["workers"]) if records else 0
    rows = [
        (r["queue"], int(r["due"]), int(r["scheduled"]), int(r["running"]), r["oldest_due_age"])
        for r in records
        if r["queue"] is not None
    ]
    return workers, rows
