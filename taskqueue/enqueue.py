"""Turning what a caller gave into rows: validation against the registry and
the limits, defaults, ids, the payload encoded once, and the insert.

One path for every producer: ``TaskQueue.enqueue`` and its siblings, the
REST API (which groups concurrent requests into one INSERT) and schedule
definitions (whose task settings are checked as a task's). Everything
PostgreSQL would refuse is refused here, before any statement, so that one
producer's bad value never fails a statement it shares with others."""

from __future__ import annotations

import math
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from taskqueue import store
from taskqueue.callbacks import CALLBACK_TYPE, callback_problem, normalised
from taskqueue.errors import InvalidTask, QuotaExceeded
from taskqueue.limits import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_DELAY_SECONDS,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PAYLOAD_DEPTH,
    MAX_PRIORITY,
    MAX_QUEUE_LENGTH,
    MAX_RETRIES_LIMIT,
    MAX_TENANT_LENGTH,
    MAX_TIMEOUT_SECONDS,
    MAX_TTL_SECONDS,
    MAX_TYPE_LENGTH,
)
from taskqueue.models import Enqueued, NewTask, uuid7, uuid7s
from taskqueue.observability import tracing
from taskqueue.observability.metrics import ENQUEUED
from taskqueue.validation import (
    QUEUE_NAME,
    is_member_key,
    json_problem,
    key_problem,
    queue_problem,
    text_problem,
    zoned_problem,
)

if TYPE_CHECKING:
    from taskqueue.registry import Registry, TaskSpec

_decode_json = msgspec.json.Decoder().decode
_encode_json = msgspec.json.Encoder().encode
_NUMBER = (int, float)
_queue_name = QUEUE_NAME.fullmatch
_NUL_ESCAPE = b"\\u0000"
_TOO_DEEP = (
    f"nested deeper than {MAX_PAYLOAD_DEPTH} levels of arrays and objects (or contains itself)"
)
# A JSON document nests at most half its length deep.
_SHORT_JSON = 2 * MAX_PAYLOAD_DEPTH + 1

# Inserts prepared rows in one statement (store.enqueue_tasks, bound to a connection).
Insert = Callable[[Sequence[store.TaskRow]], Awaitable[list[Enqueued]]]


def prepare(tasks: Sequence[NewTask], registry: Registry | None) -> list[store.TaskRow]:
    """Validate new tasks and fill in every default, without touching the
    database; raises InvalidTask naming the field (``tasks[i].field`` in a
    batch). ``registry`` None accepts any type unchecked."""
    # Once per call, not per task: the same span enqueues them all.
    traceparent = tracing.current_traceparent()
    count = len(tasks)
    ids = uuid7s(count)  # in one go: a third of the cost of making them one by one
    return [
        resolve(task, registry, index, count, traceparent, ids[index])
        for index, task in enumerate(tasks)
    ]


def _refused_input(exc: BaseException) -> bool:
    """PostgreSQL refused a value (data exception, program limit), through
    asyncpg or, for the sync API and callers' psycopg connections, psycopg
    (looked up, not imported: only a process that uses it has loaded it)."""
    if isinstance(exc, asyncpg.DataError | asyncpg.ProgramLimitExceededError):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(
        exc, psycopg.errors.DataError | psycopg.errors.ProgramLimitExceeded
    )


def refuse_over_quota(exc: BaseException) -> None:
    """Raise QuotaExceeded for an insert that a tenant's quota refused
    (taskqueue.admit_tasks, SQLSTATE TQ429, through either driver)."""
    if getattr(exc, "sqlstate", None) == "TQ429":
        message = getattr(exc, "message", None) or str(exc).partition("\n")[0]
        raise QuotaExceeded(str(message)) from None


async def insert(statement: Insert, rows: Sequence[store.TaskRow]) -> list[Enqueued]:
    """Run the insert of prepared rows (``statement`` is store.enqueue_tasks
    bound to a connection) and count what it created. The payloads of the
    tasks it returns as created are the JSON that was sent, as
    ``msgspec.Raw`` (``decode_payloads`` turns them into values)."""
    try:
        results = await statement(rows)
    except Exception as exc:
        refuse_over_quota(exc)
        if not _refused_input(exc):
            raise
        # prepare() refuses everything known to upset PostgreSQL; should a
        # value still get through, it is the input's fault, not the caller's.
        field = "task" if len(rows) == 1 else "tasks"
        sqlstate = getattr(exc, "sqlstate", None)
        raise InvalidTask(field, f"PostgreSQL refused it ({sqlstate}: {exc})") from None
    # Counted once the statement returned (inside a caller's transaction
    # that may yet roll back: a producer's count, not the table's).
    ENQUEUED.add(r.task for r in results if r.created)
    return results


def decode_payloads(results: list[Enqueued]) -> list[Enqueued]:
    """The JSON that was stored, decoded: what get() will read."""
    for result in results:
        payload = result.task.payload
        if isinstance(payload, msgspec.Raw):
            result.task.payload = _decode_json(payload)
    return results


def resolve(
    new: NewTask,
    registry: Registry | None,
    index: int = 0,
    count: int = 1,
    traceparent: str | None = None,
    task_id: uuid.UUID | None = None,
) -> store.TaskRow:
    """One task as the row to insert; ``index`` and ``count`` place it in its
    batch; ``task_id`` (a new one if None) becomes its id."""
    if type(new) is not NewTask:
        raise _invalid(index, count, "task", f"must be a NewTask, not {type(new).__name__}")
    task_type = new.type
    if task_type == CALLBACK_TYPE:
        # Only the end of a task queues one: a producer could otherwise have
        # any body signed with the callback secret.
        raise _invalid(index, count, "type", f"{CALLBACK_TYPE} is queued by taskqueue itself")
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
    encoded = _encoded(payload, index, count)

    default_queue, default_priority, default_retries, default_timeout = defaults(spec)
    queue = default_queue if new.queue is None else new.queue
    priority = default_priority if new.priority is None else new.priority
    max_retries = default_retries if new.max_retries is None else new.max_retries
    timeout = default_timeout if new.timeout_seconds is None else new.timeout_seconds
    if not (type(queue) is str and len(queue) <= MAX_QUEUE_LENGTH and _queue_name(queue)):
        raise _invalid(
            index, count, "queue", queue_problem(queue, max_length=MAX_QUEUE_LENGTH) or "invalid"
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
    run_at_utc, delay_us = _when(new, index, count)
    key = new.idempotency_key
    if key is not None and not (
        type(key) is str
        and 0 < len(key) <= MAX_KEY_LENGTH
        and key.isprintable()
        and not is_member_key(key)
    ):
        problem = key_problem(key, max_length=MAX_KEY_LENGTH) or "invalid"
        raise _invalid(index, count, "idempotency_key", problem)
    expires_at, ttl_us = _expiry(new, run_at_utc, delay_us, index, count)
    callback = new.callback
    if callback is not None:
        if wrong := callback_problem(callback):
            field, message = wrong
            raise _invalid(index, count, f"callback.{field}" if field else "callback", message)
        callback = normalised(callback)
    tenant = new.tenant
    if tenant is not None and not (
        type(tenant) is str and len(tenant) <= MAX_TENANT_LENGTH and _queue_name(tenant)
    ):
        problem = queue_problem(tenant, max_length=MAX_TENANT_LENGTH) or "invalid"
        raise _invalid(index, count, "tenant", problem)
    sequence_key = _claim_key(new.sequence_key, "sequence_key", index, count)
    concurrency_key = _claim_key(new.concurrency_key, "concurrency_key", index, count)
    on_failure = new.sequence_on_failure
    if on_failure is not None:
        if on_failure not in ("release", "block"):
            raise _invalid(index, count, "sequence_on_failure", '"release" or "block"')
        if sequence_key is None:
            raise _invalid(index, count, "sequence_on_failure", "needs a sequence_key")
    return store.TaskRow(
        id=uuid7() if task_id is None else task_id,
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
        expires_at=expires_at,
        ttl_us=ttl_us,
        callback=callback,
        tenant=tenant,
        sequence_key=sequence_key,
        sequence_on_failure=on_failure,
        concurrency_key=concurrency_key,
    )


def _claim_key(key: object, field: str, index: int, count: int) -> str | None:
    """A sequence or concurrency key: printable text as an idempotency key is."""
    if key is None:
        return None
    if type(key) is str and 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable():
        return key
    raise _invalid(index, count, field, _text(key, MAX_KEY_LENGTH, 1))


def defaults(spec: TaskSpec | None) -> tuple[str, int, int, float]:
    """Queue, priority, max_retries and timeout a task gets when unset."""
    if spec is None:
        return DEFAULT_QUEUE, 0, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_SECONDS
    return (
        spec.queue or DEFAULT_QUEUE,
        0 if spec.priority is None else spec.priority,
        DEFAULT_MAX_RETRIES if spec.max_retries is None else spec.max_retries,
        DEFAULT_TIMEOUT_SECONDS if spec.timeout_seconds is None else spec.timeout_seconds,
    )


def _encoded(payload: Any, index: int, count: int) -> bytes:
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
    return encoded


def _when(new: NewTask, index: int, count: int) -> tuple[datetime | None, int]:
    """(run_at in UTC or None for now, delay in microseconds)."""
    run_at = new.run_at
    delay = new.delay_seconds
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
            return run_at.astimezone(UTC), 0
        return None, 0
    if delay is not None:
        if type(delay) not in _NUMBER or not (
            math.isfinite(delay) and 0 <= delay <= MAX_DELAY_SECONDS
        ):
            raise _invalid(
                index, count, "delay", f"a number of seconds from 0 to {MAX_DELAY_SECONDS:g}"
            )
        return None, round(delay * 1_000_000)
    return None, 0


def _expiry(
    new: NewTask, run_at: datetime | None, delay_us: int, index: int, count: int
) -> tuple[datetime | None, int | None]:
    """(expires_at in UTC, or None; ttl in microseconds after the database's
    clock, or None). An expiry at or before the task is due is refused: the
    task could never run."""
    expires_at, ttl = new.expires_at, new.ttl_seconds
    if expires_at is not None:
        if ttl is not None:
            raise _invalid(index, count, "expires_at", "give expires_at or ttl_seconds, not both")
        problem = zoned_problem(expires_at)
        if problem is not None:
            raise _invalid(index, count, "expires_at", problem)
        due = run_at or datetime.now(UTC) + timedelta(microseconds=delay_us)
        if expires_at <= due:
            raise _invalid(
                index, count, "expires_at", "must be later than the task is due (run_at, or now)"
            )
        return expires_at.astimezone(UTC), None
    if ttl is None:
        return None, None
    if type(ttl) not in _NUMBER or not (math.isfinite(ttl) and 0 < ttl <= MAX_TTL_SECONDS):
        raise _invalid(
            index, count, "ttl_seconds", f"a number of seconds > 0 and <= {MAX_TTL_SECONDS:g}"
        )
    ttl_us = round(ttl * 1_000_000)
    if run_at is not None and run_at >= datetime.now(UTC) + timedelta(microseconds=ttl_us):
        raise _invalid(index, count, "ttl_seconds", "must reach past run_at")
    if ttl_us <= delay_us:
        raise _invalid(index, count, "ttl_seconds", "must be longer than the delay")
    return None, ttl_us


def _text(value: object, max_length: int, min_length: int) -> str:
    return text_problem(value, max_length=max_length, min_length=min_length) or "invalid"


def _invalid(index: int, count: int, field: str, message: str) -> InvalidTask:
    """InvalidTask naming ``field``, as ``tasks[i].field`` in a batch."""
    return InvalidTask(field if count == 1 else f"tasks[{index}].{field}", message)
