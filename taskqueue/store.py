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
    TASK_FIELDS,
    BulkResult,
    ClaimedTask,
    Enqueued,
    FailureGroup,
    OperatorAction,
    Outcome,
    QueueInfo,
    QueueStats,
    RateLimit,
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


class TaskRow(msgspec.Struct, kw_only=True, gc=False):
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
    )


def _new_task(row: TaskRow, created_at: datetime) -> Task:
    # Built from what we sent and the statement's now(): the same values the
    # row holds (created_at defaults to now(); run_at is now() + delay_us).
    payload = row.payload
    if isinstance(payload, msgspec.Raw):
        payload = msgspec.json.decode(payload)
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
