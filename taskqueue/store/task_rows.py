"""A new task as the row to insert (``TaskRow``), and the task a producer
gets back for it. The row's fields are the one list of inserted columns:
the single-row statement takes them as its parameters in this order, the
batch statement as the keys of its JSON objects, and COPY as its columns
(all but the two that say when the task is due, which the database
computes), so a new column is one new field here plus the statements'
column lists."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from taskqueue.models import Status, Task


class TaskRow(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """A new task with every default already resolved, ready to insert. The
    fields are declared in the order of enqueue_task.sql's parameters."""

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
    # Expiry: an instant (UTC), or microseconds after the database's clock
    # (ttl_seconds); and the callback. None (left out of the bulk JSON) for most.
    expires_at: datetime | None = None
    ttl_us: int | None = None
    callback: Any = None
    tenant: str | None = None  # None (left out of the bulk JSON): no tenant
    # Claim keys (migration 0014): None (left out of the bulk JSON) for most.
    # A task with a sequence_key waits for the key's previous task, which
    # only enqueue_dependent_tasks.sql knows how to insert.
    sequence_key: str | None = None
    sequence_on_failure: str | None = None  # 'block' | 'release' (None: release)
    concurrency_key: str | None = None


# COPY leaves run_at to its default, statement_timestamp() (rows due now
# only), and takes no expiry relative to the database's clock (ttl_us).
_NOT_COPIED = ("run_at", "delay_us", "ttl_us")
COPY_COLUMNS: tuple[str, ...] = tuple(
    name for name in TaskRow.__struct_fields__ if name not in _NOT_COPIED
)
_copied = operator.itemgetter(*(TaskRow.__struct_fields__.index(name) for name in COPY_COLUMNS))


def copy_record(row: TaskRow) -> tuple[Any, ...]:
    """``row``'s values in the order of COPY_COLUMNS."""
    values: tuple[Any, ...] = _copied(msgspec.structs.astuple(row))
    return values


# What a task is before its row's values go in: everything a new task has
# that no row gives (no lease, no attempts, no outcome). Copying it and
# setting the row's fields costs half of calling Task() with every field.
_NEW = Task(
    id=uuid.UUID(int=0),
    queue="",
    type="",
    name="",
    payload=None,
    status=Status.QUEUED,
    priority=0,
    attempts=0,
    max_retries=0,
    timeout_seconds=0.0,
    run_at=datetime.min,
    locked_by=None,
    locked_until=None,
    idempotency_key=None,
    result=None,
    last_error=None,
    created_at=datetime.min,
    started_at=None,
    completed_at=None,
)
# A Struct's shallow copy, in C (msgspec's stubs do not declare __copy__).
_copy_new: Callable[[], Task] = _NEW.__copy__  # type: ignore[attr-defined]


def new_task(row: TaskRow, created_at: datetime, status: Status = Status.QUEUED) -> Task:
    """The task ``row`` became, inserted at ``created_at`` (as ``status``: a
    task with dependencies may start waiting, or cancelled)."""
    # Built from what we sent and the statement's start time: the same values
    # the row holds (created_at defaults to statement_timestamp(); run_at is
    # that + delay_us).
    # The payload stays the JSON that was sent (msgspec.Raw): the REST API
    # writes it back out as it is, and TaskQueue.submit decodes it for Python.
    task = _copy_new()
    task.id = row.id
    task.queue = row.queue
    task.type = row.type
    task.name = row.name
    task.payload = row.payload
    task.status = status
    task.priority = row.priority
    task.max_retries = row.max_retries
    task.timeout_seconds = row.timeout_seconds
    run_at = row.run_at
    if run_at is None:
        run_at = created_at + timedelta(microseconds=row.delay_us) if row.delay_us else created_at
    task.run_at = run_at
    task.idempotency_key = row.idempotency_key
    task.created_at = created_at
    task.expires_at = (
        row.expires_at if row.ttl_us is None else created_at + timedelta(microseconds=row.ttl_us)
    )
    task.callback = row.callback
    task.tenant = row.tenant
    task.sequence_key = row.sequence_key
    task.sequence_on_failure = row.sequence_on_failure
    task.concurrency_key = row.concurrency_key
    return task
