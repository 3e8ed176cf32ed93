"""Test helpers for applications that enqueue tasks.

- ``enqueued``, ``assert_enqueued``, ``refute_enqueued``: what was enqueued
  (by type, payload subset, queue, status), read through the test's own
  connection, so that tasks its open transaction inserted count too.
- ``drain`` (sync) and ``drain_async``: run the due tasks in-process with
  the real handlers: claimed by the worker's claim statement, run by the
  worker's executor, finished by the worker's completion statement, until
  none is due. They return what happened to each.
- The pytest plugin (``taskqueue.testing.pytest_plugin``, loaded by pytest
  on its own) gives a migrated throwaway database per test."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import msgspec

from taskqueue import connections, store
from taskqueue.backoff import Backoff
from taskqueue.client import TaskQueue as AsyncTaskQueue
from taskqueue.errors import InvalidArgument
from taskqueue.models import Outcome, OutcomeKind, Status, Task
from taskqueue.registry import Registry
from taskqueue.store.adapters import PsycopgSync, as_connection, run_sync
from taskqueue.sync import TaskQueue
from taskqueue.worker.executor import ExecutorPool
from taskqueue.worker.inflight import Attempt, InFlight

__all__ = [
    "Ran",
    "assert_enqueued",
    "drain",
    "drain_async",
    "enqueued",
    "refute_enqueued",
]

_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode
_LIMIT = 1000


class Ran(msgspec.Struct, kw_only=True):
    """One attempt ``drain`` ran: the task, and how it ended (``outcome`` is
    succeeded, error, timeout, permanent, snoozed or released)."""

    task_id: uuid.UUID
    type: str
    queue: str
    payload: Any
    attempt: int
    outcome: str
    result: Any = None
    error: str | None = None


# -- what was enqueued ---------------------------------------------------------


def enqueued(
    target: Any,
    *,
    type: str | None = None,
    payload: Any = None,
    queue: str | None = None,
    status: Status | str | None = None,
) -> list[Task]:
    """Tasks of ``type`` in ``queue`` whose payload contains ``payload``
    (PostgreSQL's ``@>``: a dict matches any payload that has those keys with
    those values), oldest first. ``target``: a ``taskqueue.sync.TaskQueue``,
    or the connection the code under test enqueued through (psycopg,
    SQLAlchemy Connection or Session, Django connection)."""
    wanted = None if payload is None else msgspec.Raw(_encode_json(payload))
    found = None if status is None else Status(status)

    def read(conn: store.Connection) -> list[Task]:
        return run_sync(
            store.enqueued_tasks(
                conn, task_type=type, queue=queue, payload=wanted, status=found, limit=_LIMIT
            )
        )

    if isinstance(target, TaskQueue):
        with target.pool.connection() as conn:
            return read(as_connection(PsycopgSync(conn, own=True)))
    return read(connections.sync_connection(target))


def assert_enqueued(
    target: Any,
    *,
    type: str | None = None,
    payload: Any = None,
    queue: str | None = None,
    status: Status | str | None = None,
    count: int | None = None,
) -> Task:
    """The first matching task; AssertionError naming what was enqueued
    instead when none matches (or not exactly ``count``)."""
    tasks = enqueued(target, type=type, payload=payload, queue=queue, status=status)
    if not tasks or (count is not None and len(tasks) != count):
        wanted = _describe(type=type, payload=payload, queue=queue, status=status)
        times = "" if count is None else f" {count} time(s)"
        raise AssertionError(
            f"expected a task {wanted} enqueued{times}, found {len(tasks)}; "
            f"enqueued: {_summary(enqueued(target))}"
        )
    return tasks[0]


def refute_enqueued(
    target: Any,
    *,
    type: str | None = None,
    payload: Any = None,
    queue: str | None = None,
    status: Status | str | None = None,
) -> None:
    """AssertionError when a matching task was enqueued."""
    tasks = enqueued(target, type=type, payload=payload, queue=queue, status=status)
    if tasks:
        wanted = _describe(type=type, payload=payload, queue=queue, status=status)
        raise AssertionError(f"expected no task {wanted}, found: {_summary(tasks)}")


def _describe(**given: Any) -> str:
    parts = [f"{key}={value!r}" for key, value in given.items() if value is not None]
    return f"with {', '.join(parts)}" if parts else "at all"


def _summary(tasks: list[Task]) -> str:
    shown = [f"{t.type}({t.queue}, {t.status}) {t.payload!r}" for t in tasks[:10]]
    more = f" and {len(tasks) - 10} more" if len(tasks) > 10 else ""
    return ("; ".join(shown) or "nothing") + more


# -- running them ------------------------------------------------------------------


def drain(
    target: Any,
    registry: Registry,
    *,
    queues: list[str] | None = None,
    limit: int = 100,
    worker_id: str = "taskqueue-testing",
) -> list[Ran]:
    """Run every due task of ``registry``'s types in ``queues`` (every queue
    when None), and the ones those handlers enqueue, until none is due or
    ``limit`` attempts have run. ``target``: a ``taskqueue.sync.TaskQueue``
    or an autocommit psycopg connection. Tasks must be committed: inside an
    open transaction the database clock stands still, so nothing enqueued
    in it is due yet. From async code use ``drain_async``."""
    if isinstance(target, TaskQueue):
        with target.pool.connection() as conn:
            return asyncio.run(
                _drain(
                    as_connection(PsycopgSync(conn, own=True)), registry, queues, limit, worker_id
                )
            )
    if getattr(target, "autocommit", None) is not True:
        raise InvalidArgument(
            "target",
            "a taskqueue.sync.TaskQueue or an autocommit psycopg connection: drain runs "
            "tasks in transactions of its own, as a worker does",
        )
    return asyncio.run(
        _drain(connections.sync_connection(target), registry, queues, limit, worker_id)
    )


async def drain_async(
    tq: AsyncTaskQueue,
    registry: Registry,
    *,
    queues: list[str] | None = None,
    limit: int = 100,
    worker_id: str = "taskqueue-testing",
) -> list[Ran]:
    """``drain`` for async code, on an async ``TaskQueue``'s pool."""
    async with tq.pool.acquire() as conn:
        return await _drain(conn, registry, queues, limit, worker_id)


async def _drain(
    conn: store.Connection,
    registry: Registry,
    queues: list[str] | None,
    limit: int,
    worker_id: str,
) -> list[Ran]:
    lease = 300.0
    executor = ExecutorPool(
        InFlight(concurrency=1, max_prefetch=0, lease_seconds=lease),
        registry,
        worker_id=worker_id,
        backoff=Backoff(),
        submit=lambda _outcome: None,
    )
    runner = asyncio.current_task()
    assert runner is not None
    loop = asyncio.get_running_loop()
    ran: list[Ran] = []
    while len(ran) < limit:
        names = queues if queues is not None else await store.lane_queues(conn)
        claimed = await store.claim_tasks(
            conn,
            names,
            1,
            worker_id,
            lease,
            types=registry.names(),
            parent_result_types=registry.parent_result_types(),
            governed=True,
        )
        if not claimed:
            break
        task = claimed[0]
        attempt = Attempt(task, time.monotonic() + lease)
        outcome = await executor.execute(attempt, runner, loop)
        await store.complete_tasks(conn, [outcome], worker_id)
        ran.append(_ran(task.id, task.type, task.queue, task.payload, task.attempt, outcome))
    return ran


def _ran(
    task_id: uuid.UUID, type: str, queue: str, payload: Any, attempt: int, outcome: Outcome
) -> Ran:
    result = outcome.result
    if isinstance(result, msgspec.Raw):
        result = _decode_json(result)
    if isinstance(payload, str | bytes):
        payload = _decode_json(payload)
    kind = outcome.kind
    return Ran(
        task_id=task_id,
        type=type,
        queue=queue,
        payload=payload,
        attempt=attempt,
        outcome=kind.value if isinstance(kind, OutcomeKind) else str(kind),
        result=result,
        error=outcome.error,
    )
