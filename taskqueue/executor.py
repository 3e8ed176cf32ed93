"""Runs one claimed attempt and turns whatever happens into an ``Outcome``.
No SQL here: the completer persists the outcome."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import msgspec

from taskqueue.backoff import Backoff
from taskqueue.models import ClaimedTask, Outcome, OutcomeKind
from taskqueue.registry import Registry, TaskContext

logger = logging.getLogger("taskqueue.executor")

MAX_ERROR_LENGTH = 4000


class Attempt:
    """A running attempt the worker can cut short: at shutdown (released) or
    when its lease was lost (the rescuer owns the task now)."""

    __slots__ = ("_deadline", "finished", "interrupted", "task")

    def __init__(self, task: ClaimedTask) -> None:
        self.task = task
        self.finished = False  # the handler is done; the outcome may await recording
        self.interrupted: OutcomeKind | None = None
        self._deadline: asyncio.Timeout | None = None

    def interrupt(self, kind: OutcomeKind = OutcomeKind.RELEASED) -> None:
        if self.interrupted is not None:
            return
        self.interrupted = kind
        if self._deadline is not None:
            # Expire the handler's timeout now: it is cancelled at its next await.
            self._deadline.reschedule(asyncio.get_running_loop().time())


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # PostgreSQL text cannot hold NUL; a huge message would bloat every event.
    return text.replace("\x00", "")[:MAX_ERROR_LENGTH]


async def execute(
    attempt: Attempt, registry: Registry, worker_id: str, default_backoff: Backoff
) -> Outcome:
    task = attempt.task
    spec = registry.get(task.type)
    backoff = (spec.backoff if spec else None) or default_backoff

    def failed(kind: OutcomeKind, error: str) -> Outcome:
        return Outcome(
            task_id=task.id,
            attempt=task.attempt,
            kind=kind,
            error=error,
            retry_delay=backoff.delay(task.attempt),
        )

    if spec is None:
        return failed(
            OutcomeKind.ERROR,
            f"no handler for task type {task.type!r} on worker {worker_id}; "
            f"it knows: {', '.join(registry.names())}",
        )
    try:
        payload = spec.decode_payload(task.payload)
    except msgspec.ValidationError as exc:
        return failed(OutcomeKind.ERROR, f"payload does not match {task.type!r}: {exc}")

    context = TaskContext(
        task_id=task.id,
        type=task.type,
        queue=task.queue,
        attempt=task.attempt,
        max_retries=task.max_retries,
        worker_id=worker_id,
        logger=logging.LoggerAdapter(
            logger, {"task_id": str(task.id), "task_type": task.type, "attempt": task.attempt}
        ),
    )
    try:
        async with asyncio.timeout(task.timeout_seconds) as deadline:
            attempt._deadline = deadline
            if attempt.interrupted is not None:
                deadline.reschedule(asyncio.get_running_loop().time())
            result = await spec.handler(payload, context)
    except TimeoutError as exc:
        if attempt.interrupted is not None:
            return Outcome(task_id=task.id, attempt=task.attempt, kind=OutcomeKind.RELEASED)
        if deadline.expired():
            return failed(OutcomeKind.TIMEOUT, f"timed out after {task.timeout_seconds:g} seconds")
        return failed(OutcomeKind.ERROR, describe_error(exc))
    except Exception as exc:
        context.logger.warning("task failed: %s", type(exc).__name__)
        return failed(OutcomeKind.ERROR, describe_error(exc))
    finally:
        attempt._deadline = None
    return Outcome(
        task_id=task.id,
        attempt=task.attempt,
        kind=OutcomeKind.SUCCEEDED,
        result=_encode_result(result),
    )


def _encode_result(result: Any) -> Any:
    if result is None:
        return None
    try:
        return msgspec.Raw(msgspec.json.encode(result))
    except (TypeError, msgspec.EncodeError):
        return {"unserialisable_result": type(result).__name__}


def outcome_for_unstarted(task_id: uuid.UUID, attempt: int) -> Outcome:
    """A claimed task that never reached a handler goes back without charge."""
    return Outcome(task_id=task_id, attempt=attempt, kind=OutcomeKind.RELEASED)
