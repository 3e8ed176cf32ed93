"""Request and response bodies of the REST API (msgspec Structs). Field names
follow the contract in DESIGN.md so users of the seed API find the same shape."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

import msgspec

from taskqueue.http.errors import ErrorBody as ErrorBody  # its old home
from taskqueue.limits import (
    MAX_DELAY_SECONDS,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PRIORITY,
    MAX_QUEUE_LENGTH,
    MAX_RETRIES_LIMIT,
    MAX_TENANT_LENGTH,
    MAX_TIMEOUT_SECONDS,
    MAX_TTL_SECONDS,
    MAX_TYPE_LENGTH,
)
from taskqueue.models import NewTask, Status, Task, TaskEvent


class CreateTask(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A task to enqueue. Unset fields take the task type's defaults. Text
    fields (type, name, queue, idempotency_key) hold printable characters only:
    no control or format characters (NUL, newlines, bidi overrides, zero-width
    characters); queue names have no spaces or commas either. The payload
    nests at most 64 levels of arrays and objects and holds no NUL."""

    type: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TYPE_LENGTH)]
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    name: Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH)] = ""
    queue: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUEUE_LENGTH)] | None = None
    priority: Annotated[int, msgspec.Meta(ge=-MAX_PRIORITY, le=MAX_PRIORITY)] | None = None
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=MAX_RETRIES_LIMIT)] | None = None
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_TIMEOUT_SECONDS)] | None = None
    # With a zone, at most 10 years ahead; in the past: due now.
    run_at: datetime | None = None
    delay_seconds: Annotated[float, msgspec.Meta(ge=0, le=MAX_DELAY_SECONDS)] | None = None
    idempotency_key: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_LENGTH)] | None
    ) = None
    # Not started by then (or within ttl_seconds of now), it never runs: expired.
    expires_at: datetime | None = None
    ttl_seconds: Annotated[float, msgspec.Meta(gt=0, le=MAX_TTL_SECONDS)] | None = None
    # {"url": "https://...", "events": ["succeeded", "failed", "cancelled", "expired"]}:
    # the outcome is POSTed there, signed (Standard Webhooks).
    callback: dict[str, Any] | None = None
    # Existing tasks this one waits for (it is `waiting` until they finish).
    depends_on: Annotated[list[uuid.UUID], msgspec.Meta(max_length=1000)] | None = None
    on_parent_failure: Literal["cancel", "run"] = "cancel"
    # The tenant it belongs to; a tenant's token stamps its own (README "Tenants").
    tenant: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TENANT_LENGTH)] | None = None
    # Tasks with the same sequence_key in a queue and tenant run one at a time, in enqueue
    # order; "block": this task's final failure holds the ones after it.
    sequence_key: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_LENGTH)] | None = (
        None
    )
    sequence_on_failure: Literal["release", "block"] | None = None
    # At most the queue's per_key_concurrency tasks with this key run at once.
    concurrency_key: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_LENGTH)] | None
    ) = None

    def to_new_task(self, idempotency_key: str | None = None) -> NewTask:
        return NewTask(
            type=self.type,
            payload=self.payload,
            queue=self.queue,
            name=self.name,
            priority=self.priority,
            max_retries=self.max_retries,
            timeout_seconds=self.timeout_seconds,
            run_at=self.run_at,
            delay_seconds=self.delay_seconds,
            idempotency_key=idempotency_key or self.idempotency_key,
            expires_at=self.expires_at,
            ttl_seconds=self.ttl_seconds,
            callback=self.callback,
            tenant=self.tenant,
            sequence_key=self.sequence_key,
            sequence_on_failure=self.sequence_on_failure,
            concurrency_key=self.concurrency_key,
        )


class CreateTasks(msgspec.Struct, forbid_unknown_fields=True):
    """Several tasks, inserted in one statement."""

    tasks: list[CreateTask]


class CreateWorkflowTask(CreateTask, forbid_unknown_fields=True, kw_only=True):
    """A task of a workflow: any task field, its ``ref`` (unique in the
    workflow) and the refs it runs after."""

    ref: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    depends_on: Annotated[list[str], msgspec.Meta(max_length=10_000)] = msgspec.field(  # type: ignore[assignment]
        default_factory=list
    )


class CreateWorkflow(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A graph of tasks, inserted in one transaction (at most 10,000 tasks)."""

    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    tasks: list[CreateWorkflowTask]


class WorkflowTaskCreated(msgspec.Struct, kw_only=True):
    ref: str
    id: uuid.UUID
    status: Status


class WorkflowCreated(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    tasks: list[WorkflowTaskCreated]


class WorkflowTaskOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    ref: str | None
    type: str
    status: Status
    attempts: int
    depends_on: list[str]  # parents' refs (their ids when they have none)
    on_parent_failure: list[str]  # per parent, in the same order
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    last_error: str | None


class WorkflowOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    status: str  # running | succeeded | failed | cancelled
    created_at: datetime
    tasks: list[WorkflowTaskOut]


class WorkflowSummaryOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    status: str
    created_at: datetime
    total: int
    unfinished: int
    succeeded: int
    failed: int
    cancelled: int


class WorkflowPage(msgspec.Struct, kw_only=True):
    workflows: list[WorkflowSummaryOut]
    next_cursor: str | None  # pass as ?cursor= for the next page; null on the last one


class TaskOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    type: str
    queue: str
    status: Status
    priority: int
    payload: Any
    retry_count: int
    attempts: int
    max_retries: int
    timeout_seconds: float
    run_at: datetime
    idempotency_key: str | None
    result: Any
    last_error: str | None
    locked_by: str | None
    locked_until: datetime | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    schedule: str | None  # the schedule that fired it
    slot: datetime | None  # the slot it was fired for (null: triggered by hand)
    expires_at: datetime | None = None  # not started by then: it ends expired
    callback: Any = None  # {"url", "events"}: where its outcome is POSTed
    tenant: str | None = None  # the tenant it belongs to (null: none)
    sequence_key: str | None = None  # runs after its key's earlier tasks, one at a time
    sequence_on_failure: str | None = None  # "block": its final failure holds the sequence
    concurrency_key: str | None = None  # counted against the queue's per_key_concurrency

    @classmethod
    def of(cls, task: Task, **extra: Any) -> Self:
        return cls(
            id=task.id,
            name=task.name,
            type=task.type,
            queue=task.queue,
            status=task.status,
            priority=task.priority,
            payload=task.payload,
            retry_count=task.retry_count,
            attempts=task.attempts,
            max_retries=task.max_retries,
            timeout_seconds=task.timeout_seconds,
            run_at=task.run_at,
            idempotency_key=task.idempotency_key,
            result=task.result,
            last_error=task.last_error,
            locked_by=task.locked_by,
            locked_until=task.locked_until,
            created_at=task.created_at,
            started_at=task.started_at,
            completed_at=task.completed_at,
            schedule=task.schedule,
            slot=task.slot,
            expires_at=task.expires_at,
            callback=task.callback,
            tenant=task.tenant,
            sequence_key=task.sequence_key,
            sequence_on_failure=task.sequence_on_failure,
            concurrency_key=task.concurrency_key,
            **extra,
        )


class BatchTaskOut(TaskOut, kw_only=True):
    """A task of a batch, and whether this request created it (False: its
    idempotency key already belonged to it)."""

    created: bool


class TaskPage(msgspec.Struct, kw_only=True):
    tasks: list[TaskOut]
    next_cursor: str | None  # pass as ?cursor= for the next page; null on the last one


class EventOut(msgspec.Struct, kw_only=True):
    id: int
    event_type: str
    status: Status
    attempt: int
    worker_id: str | None
    error: str | None
    detail: Any
    created_at: datetime

    @classmethod
    def of(cls, event: TaskEvent) -> EventOut:
        return cls(
            id=event.id,
            event_type=event.event_type,
            status=event.status,
            attempt=event.attempt,
            worker_id=event.worker_id,
            error=event.error,
            detail=event.detail,
            created_at=event.at,
        )


class Health(msgspec.Struct, kw_only=True):
    status: str  # "healthy": the process answers
    database: str  # "connected" | "unreachable" (at the last snapshot) | "unknown"
    workers: int  # live workers
    queue_depth: int  # queued tasks that are due


class Readiness(msgspec.Struct, kw_only=True):
    status: str  # "ready" | "unavailable"
    database: str  # "connected" | "unreachable"
    migrations: str  # "current" | "pending" | "unknown"
