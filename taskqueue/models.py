"""The values the queue passes around: tasks, events, outcomes. No I/O here."""

from __future__ import annotations

import enum
import os
import random
import threading
import time
import uuid
from datetime import datetime
from typing import Any, TypedDict

import msgspec
from asyncpg.pgproto.pgproto import UUID as _C_UUID


class Status(enum.StrEnum):
    WAITING = "waiting"  # for its parents (dependencies): never claimed
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # not started by its expires_at: never ran


class EventType(enum.StrEnum):
    QUEUED = "task_queued"
    STARTED = "task_started"
    SUCCEEDED = "task_succeeded"
    RETRY_SCHEDULED = "task_retry_scheduled"
    FAILED = "task_failed"
    CANCELLED = "task_cancelled"
    LEASE_EXPIRED = "task_lease_expired"
    RELEASED = "task_released"
    REQUEUED = "task_requeued"
    SNOOZED = "task_snoozed"
    DELETED = "task_deleted"
    EXPIRED = "task_expired"
    READY = "task_ready"  # waiting -> queued: its parents finished


class OutcomeKind(enum.StrEnum):
    SUCCEEDED = "succeeded"
    ERROR = "error"  # retried while retries are left
    TIMEOUT = "timeout"  # like an error, recorded as a timeout
    PERMANENT = "permanent"  # fails now: retrying cannot help
    SNOOZED = "snoozed"  # back to the queue after a delay, attempt not charged
    RELEASED = "released"  # back to the queue now, attempt not charged (never ran to the end)


class Task(msgspec.Struct, kw_only=True, gc=False):
    """A row of taskqueue.tasks.

    Not tracked by the garbage collector (a producer makes thousands a
    second; their payloads, decoded JSON, are tracked on their own): a Task
    must not be part of a reference cycle."""

    id: uuid.UUID
    queue: str
    type: str
    name: str
    payload: Any
    status: Status
    priority: int
    attempts: int
    max_retries: int
    timeout_seconds: float
    run_at: datetime
    locked_by: str | None
    locked_until: datetime | None
    idempotency_key: str | None
    result: Any
    last_error: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    schedule: str | None = None  # the schedule that fired it
    slot: datetime | None = None  # the slot it was fired for (None: triggered by hand)
    expires_at: datetime | None = None  # not started by then: it ends expired
    callback: Any = None  # {"url", "events"}: its outcome is POSTed there (taskqueue.callbacks)
    workflow_id: uuid.UUID | None = None  # the workflow it belongs to
    workflow_ref: str | None = None  # its name within that workflow
    waiting_on: int = 0  # parents not finished yet (while waiting)
    tenant: str | None = None  # the tenant it belongs to (None: no tenant)
    sequence_key: str | None = None  # runs after the key's earlier tasks of its queue
    sequence_on_failure: str | None = None  # 'block': a final failure holds the sequence
    concurrency_key: str | None = None  # counted against the queue's per_key_concurrency

    @property
    def retry_count(self) -> int:
        """Attempts beyond the first that have started."""
        return max(self.attempts - 1, 0)


TASK_FIELDS: tuple[str, ...] = Task.__struct_fields__


class TaskEvent(msgspec.Struct, kw_only=True):
    """A row of taskqueue.task_events: one state change of one task."""

    id: int
    task_id: uuid.UUID
    at: datetime
    event_type: str
    status: Status
    attempt: int
    worker_id: str | None
    error: str | None
    detail: Any


class NewTask(msgspec.Struct, kw_only=True):
    """What a producer asks for; unset fields take the handler's or the queue's defaults."""

    type: str
    payload: Any = msgspec.field(default_factory=dict)
    queue: str | None = None
    name: str = ""
    priority: int | None = None
    max_retries: int | None = None
    timeout_seconds: float | None = None
    run_at: datetime | None = None
    delay_seconds: float | None = None
    idempotency_key: str | None = None
    # Expiry: give expires_at or ttl_seconds (from now), not both.
    expires_at: datetime | None = None
    ttl_seconds: float | None = None
    # {"url": "https://...", "events": ["succeeded", "failed", "cancelled", "expired"]}
    callback: Any = None
    tenant: str | None = None  # the tenant it belongs to (README "Tenants")
    # Tasks with the same sequence_key in a queue (and tenant) run one at a time, in
    # enqueue order; sequence_on_failure "block" makes this task's final
    # failure hold the next ones (default "release").
    sequence_key: str | None = None
    sequence_on_failure: str | None = None
    # At most the queue's per_key_concurrency tasks of one key run at once.
    concurrency_key: str | None = None


class TaskOptions(TypedDict, total=False):
    """What ``enqueue(type, payload, **options)`` takes besides the type and
    payload, in the async and the sync API alike (``delay`` is NewTask's
    ``delay_seconds``)."""

    queue: str | None
    name: str
    priority: int | None
    run_at: datetime | None
    delay: float | None
    max_retries: int | None
    timeout_seconds: float | None
    idempotency_key: str | None
    expires_at: datetime | None
    ttl_seconds: float | None
    callback: dict[str, Any] | None
    tenant: str | None
    sequence_key: str | None
    sequence_on_failure: str | None
    concurrency_key: str | None


def new_task(type: str, payload: Any, options: TaskOptions) -> NewTask:
    """The NewTask for ``enqueue(type, payload, **options)``; an unknown
    option is a TypeError, as for any keyword argument."""
    fields: dict[str, Any] = dict(options)
    delay = fields.pop("delay", None)
    return NewTask(
        type=type, payload={} if payload is None else payload, delay_seconds=delay, **fields
    )


class Enqueued(msgspec.Struct, frozen=True, gc=False):
    """The task a producer gets back, and whether this call created it (False:
    the idempotency key already belonged to it)."""

    task: Task
    created: bool


class ClaimedTask(msgspec.Struct, kw_only=True, gc=False):
    """What a worker needs to run one claimed attempt."""

    id: uuid.UUID
    queue: str
    type: str
    payload: str  # raw JSON text, decoded straight into the handler's payload type
    priority: int
    attempt: int
    max_retries: int
    timeout_seconds: float
    run_at: datetime
    traceparent: str | None = None  # W3C trace context of the enqueuing span (tracing)
    has_callback: bool = False  # its end queues a callback delivery (taskqueue.callbacks)
    tenant: str | None = None  # the tenant it belongs to (README "Tenants")
    # JSON array of the parents' outcomes (dependencies); None without
    # parents, or when the type's handler does not read them (the claim's
    # parent_result_types).
    parent_results: str | None = None


class Outcome(msgspec.Struct, kw_only=True, gc=False):
    """How one attempt ended, for the completer to persist."""

    task_id: uuid.UUID
    attempt: int
    kind: OutcomeKind
    error: str | None = None
    result: Any = None
    # Seconds until the task is due again: the retry delay of a failure with
    # retries left, or the length of a snooze.
    retry_delay: float = 0.0
    # Why, for the event's detail: released ("shutdown", "lease_deadline"),
    # permanent ("invalid_payload"), snoozed (the handler's reason).
    reason: str | None = None
    # Types with a retry policy only (see taskqueue.retry_policy): the rule
    # that decided this failure, the exception's class name, and the
    # seconds after created_at past which no retry is scheduled.
    rule: str | None = None
    exception: str | None = None
    max_elapsed: float | None = None


class QueueStats(msgspec.Struct, kw_only=True):
    queue: str
    total_tasks: int
    queued_tasks: int
    waiting_tasks: int  # for their parents (dependencies)
    due_tasks: int
    running_tasks: int
    succeeded_tasks: int
    failed_tasks: int
    cancelled_tasks: int
    avg_retry_count: float
    tasks_with_retries: int
    expired_tasks: int = 0


class Stats(msgspec.Struct, kw_only=True):
    total_tasks: int
    queued_tasks: int
    waiting_tasks: int
    due_tasks: int
    running_tasks: int
    succeeded_tasks: int
    failed_tasks: int
    cancelled_tasks: int
    avg_retry_count: float
    tasks_with_retries: int
    queues: list[QueueStats]
    expired_tasks: int = 0


class CatchUp(enum.StrEnum):
    """What a schedule does with slots that passed while no worker fired them."""

    NONE = "none"  # skip them
    LATEST = "latest"  # fire only the most recent one
    ALL = "all"  # fire each, up to a cap; the rest are reported as missed


class Overlap(enum.StrEnum):
    ALLOW = "allow"  # fire every slot
    SKIP = "skip"  # skip a slot (and record it) while the previous task is queued or running


class NewSchedule(msgspec.Struct, kw_only=True):
    """A recurring task to define: ``cron`` or ``every_seconds``; unset task
    settings take the task type's defaults."""

    name: str
    type: str
    cron: str | None = None
    every_seconds: int | None = None
    timezone: str = "UTC"
    payload: Any = msgspec.field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    max_retries: int | None = None
    timeout_seconds: float | None = None
    catch_up: CatchUp = CatchUp.LATEST
    overlap: Overlap = Overlap.ALLOW


class ScheduleDefinition(msgspec.Struct, kw_only=True):
    """A schedule's definition with every default resolved: what is stored."""

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


class Schedule(ScheduleDefinition, kw_only=True):
    """A row of taskqueue.schedules."""

    paused: bool
    source: str  # "api", or "code": defined by a handler module, re-asserted by workers
    next_run_at: datetime  # the oldest slot not fired yet
    last_task_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


SCHEDULE_FIELDS: tuple[str, ...] = Schedule.__struct_fields__


class ScheduleFire(msgspec.Struct, kw_only=True):
    """What became of one slot (or one manual trigger, or one catch-up's
    missed slots), with the status its task has now."""

    id: int
    slot: datetime | None
    at: datetime
    outcome: str  # fired, skipped, triggered, missed
    task_id: uuid.UUID | None
    task_status: Status | None
    detail: Any


class FireTime(msgspec.Struct, frozen=True):
    local: datetime  # in the schedule's time zone
    utc: datetime


class ScheduleDetails(msgspec.Struct, kw_only=True):
    schedule: Schedule
    next_fires: list[FireTime]  # the next slots after now, oldest first
    recent_fires: list[ScheduleFire]  # newest first


_last_counter = 0
# Seeded from the OS, then cheap: a syscall per id would cost more than the
# rest of an enqueue. Uniqueness rests on the timestamp, these 74 bits and the
# counter; nothing secret is derived from them.
_random = random.Random(os.urandom(32))
_random_bits = _random.getrandbits


def _after_fork_in_child() -> None:
    # A forked child must not repeat its parent's sequence: new random bits,
    # and no counter to continue from (within the parent's millisecond the
    # child would otherwise take the parent's next id), and a lock of its own
    # (another thread may have held the parent's at the fork).
    global _last_counter, _counter_lock
    _random.seed(os.urandom(32))
    _last_counter = 0
    _counter_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


_RAND_B = 2**62 - 1
_counter_lock = threading.Lock()


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.

    Ids made this way sort by creation time, which keeps the primary key's
    inserts at the right edge of the index and makes id a keyset cursor.
    Within one process they strictly increase, also inside one millisecond
    (RFC 9562 method 2: the 74 random bits count up), so tasks enqueued in one
    call keep their order as the claim's last tie-breaker."""
    return _uuid_from_int(_layout(_take_counters(1)))


def uuid7s(count: int) -> list[uuid.UUID]:
    """``count`` ids as ``uuid7()`` would make them one after another (the
    counter steps by one), for a batch: one clock read and one draw of
    random bits for the whole batch."""
    first = _take_counters(count)
    if (first & _RAND_B) + count - 1 <= _RAND_B:
        # No carry out of rand_b: the laid-out ids step by one as well.
        base = _layout(first)
        return [_C_UUID((base + step).to_bytes(16, "big")) for step in range(count)]
    return [_uuid_from_int(_layout(first + step)) for step in range(count)]


def _take_counters(count: int) -> int:
    """The first of ``count`` counters (timestamp(48) | rand_a(12) |
    rand_b(62), without the version and variant bits) above every one taken
    before in this process, by any thread (the sync API prepares in its
    callers' threads)."""
    global _last_counter
    millis = time.time_ns() // 1_000_000
    counter = (millis & 0xFFFF_FFFF_FFFF) << 74 | _random_bits(74)
    with _counter_lock:
        if counter <= _last_counter:
            counter = _last_counter + 1
        _last_counter = counter + count - 1
    return counter


def _layout(counter: int) -> int:
    """A counter as the UUID's 128 bits, version 7 and variant 2 inserted."""
    timestamp, rand_a, rand_b = counter >> 74, (counter >> 62) & 0xFFF, counter & _RAND_B
    return timestamp << 80 | 0x7 << 76 | rand_a << 64 | 0x2 << 62 | rand_b


def _uuid_from_int(value: int) -> uuid.UUID:
    # asyncpg's UUID (a uuid.UUID, and what the store reads back) is made in
    # C from the 16 bytes (0.2 us, against 0.75 us for uuid.UUID(int=...),
    # which re-validates its argument in Python) and is sent without asyncpg
    # calling the Python-level uuid.UUID.bytes.
    made: uuid.UUID = _C_UUID(value.to_bytes(16, "big"))
    return made


# -- operating the queue ---------------------------------------------------------


class RateLimit(msgspec.Struct, kw_only=True):
    """At most ``limit`` task starts per rolling ``period_seconds``."""

    limit: int
    period_seconds: float


class QueueInfo(msgspec.Struct, kw_only=True):
    """A queue's settings and, right now, its tasks by state."""

    name: str
    paused: bool
    concurrency_limit: int | None
    rate_limit: RateLimit | None
    # At most this many running tasks per concurrency_key and tenant (None: unlimited).
    per_key_concurrency: int | None = None
    # How long its finished tasks are kept (durations such as 1d): its own
    # setting, else the default (TASKQUEUE_RETAIN_*) of the process that reads it.
    retain_succeeded: str
    retain_failed: str
    retain_cancelled: str
    queued: int
    due: int
    scheduled: int
    running: int
    waiting: int  # for their parents (dependencies): outside the claim path
    # Tasks whose latest finish was this, whether still kept or pruned since.
    succeeded: int
    failed: int
    cancelled: int
    expired: int = 0  # not started by their expires_at
    oldest_due_age_seconds: float
    finished_last_minute: int
    failed_last_minute: int
    workers: int


class WorkerInfo(msgspec.Struct, kw_only=True):
    """A row of the worker registry; ``state`` is running, stopping,
    stopped or lost (no heartbeat for three intervals)."""

    id: str
    host: str
    pid: int
    queues: list[str]
    types: list[str]
    concurrency: int
    in_flight: int
    version: str
    started_at: datetime
    last_heartbeat_at: datetime
    stopped_at: datetime | None
    state: str


class FailureGroup(msgspec.Struct, kw_only=True):
    """Failed tasks of one queue and type whose errors read the same (ids
    and numbers masked)."""

    queue: str
    type: str
    error: str
    count: int
    first_failed_at: datetime
    last_failed_at: datetime
    sample_task_id: uuid.UUID


class TaskFilter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which tasks a bulk action takes: every given field must match."""

    status: Status | None = None
    queue: str | None = None
    type: str | None = None
    error: str | None = None  # a failure group's error, as failures() shows it
    created_before: datetime | None = None
    tenant: str | None = None  # a tenant's token always takes its own


class BulkResult(msgspec.Struct, kw_only=True):
    """What a bulk action matched and changed; ``next``: pass it back as
    ``after`` for the next chunk (None when this was the last one)."""

    matched: int
    changed: int
    next: uuid.UUID | None


class OperatorAction(msgspec.Struct, kw_only=True):
    id: int
    at: datetime
    actor: str
    action: str
    scope: Any
    result: Any


class StreamEvent(msgspec.Struct, kw_only=True):
    """One task event as the live stream sends it."""

    id: int
    task_id: uuid.UUID
    at: datetime
    event_type: str
    status: str
    attempt: int
    worker_id: str | None
    queue: str | None  # None once the task is deleted
    type: str | None
    tenant: str | None = None  # the task's tenant (None: none, or deleted)
