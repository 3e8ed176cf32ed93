"""``TaskQueue`` for synchronous code (Django views, Flask, scripts): the
async API's twin on psycopg 3. The same rules run: ``enqueue.prepare``
validates and makes ids, the store's functions run the same statements
(``store.adapters`` lets them run on psycopg and ``run_sync`` drives them
without an event loop), so ids, validation, idempotency, errors and the
wake-up NOTIFY are the async API's.

``connection=`` joins the caller's transaction (see ``taskqueue.connections``):
rolled back, the task, its event and its wake-up never happened."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import msgspec
import psycopg
from psycopg_pool import ConnectionPool

from taskqueue import connections, enqueue, store
from taskqueue.client import _task_id
from taskqueue.errors import InvalidArgument, TaskFailed, TaskNotFound, TaskStateConflict
from taskqueue.models import Enqueued, NewTask, Status, Task, TaskEvent
from taskqueue.pooler import MODES, Mode
from taskqueue.registry import Registry, load_registry
from taskqueue.results import TERMINAL
from taskqueue.store.adapters import PsycopgSync, as_connection, run_sync, use_msgspec

_NOT_SET: Any = msgspec.UNSET

P = ParamSpec("P")
T = TypeVar("T")


def _configurer(pooler: Mode) -> Callable[[psycopg.Connection[Any]], None]:
    def configure(conn: psycopg.Connection[Any]) -> None:
        # Once per pooled connection, instead of once per statement.
        use_msgspec(conn.adapters)
        # psycopg names and prepares a statement from its fifth run; behind a
        # transaction pooler that cannot track them (PgBouncer before 1.21)
        # the name would reach another client's server connection.
        if _behind_pooler(conn, pooler):
            conn.prepare_threshold = None

    return configure


def _behind_pooler(conn: psycopg.Connection[Any], pooler: Mode) -> bool:
    if pooler == "auto":
        # A pooler answers the startup with a process id of its own (see taskqueue.pooler).
        return conn.info.backend_pid != run_sync(
            store.backend_pid(as_connection(PsycopgSync(conn)))
        )
    return pooler == "pgbouncer"


def _pooler_from_environment() -> Mode:
    mode = os.environ.get("TASKQUEUE_POOLER", "auto")
    if mode not in MODES:
        raise InvalidArgument("TASKQUEUE_POOLER", f"must be one of {', '.join(MODES)}")
    return cast(Mode, mode)


class TaskQueue:
    """Enqueue and inspect tasks from synchronous code.

    ``registry``: as for the async ``TaskQueue`` (the built-in types by
    default; None accepts any type unchecked).

    ``django``: with Django configured on PostgreSQL, an enqueue without
    ``connection=`` goes through Django's default connection, so it joins
    ``transaction.atomic()`` (and autocommits outside one). Django's database
    must then be the one that holds the taskqueue schema. None (default):
    whenever Django is configured so; False: never."""

    def __init__(
        self,
        pool: ConnectionPool[psycopg.Connection[Any]],
        registry: Registry | None = _NOT_SET,
        *,
        django: bool | None = None,
    ) -> None:
        self.pool = pool
        self.registry: Registry | None = load_registry([]) if registry is _NOT_SET else registry
        self._django = django

    @classmethod
    def connect(
        cls,
        dsn: str,
        registry: Registry | None = _NOT_SET,
        *,
        min_size: int = 1,
        max_size: int = 10,
        django: bool | None = None,
        pooler: Mode | None = None,
    ) -> TaskQueue:
        """A pool of its own (autocommit connections: each call its own
        transaction unless given ``connection=``). ``pooler``: as
        TASKQUEUE_POOLER (which it defaults to), ``auto`` looks whether a
        transaction pooler answers and then prepares no statement."""
        mode = pooler or _pooler_from_environment()
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "application_name": "taskqueue"},
            configure=_configurer(mode),
            open=True,
        )
        pool.wait()
        return cls(pool, registry, django=django)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> TaskQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- producing ---------------------------------------------------------------

    def enqueue(
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
        tenant: str | None = None,
        sequence_key: str | None = None,
        sequence_on_failure: str | None = None,
        concurrency_key: str | None = None,
        connection: Any = None,
    ) -> Task:
        """Add one task. ``connection``: a psycopg Connection, a SQLAlchemy
        Connection or Session, or a Django connection whose transaction the
        insert joins. With an ``idempotency_key`` already in use, the
        existing task is returned."""
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
            tenant=tenant,
            sequence_key=sequence_key,
            sequence_on_failure=sequence_on_failure,
            concurrency_key=concurrency_key,
        )
        (result,) = self.submit([new], connection=connection)
        return result.task

    def enqueue_many(self, tasks: Sequence[NewTask], *, connection: Any = None) -> list[Task]:
        """Add many tasks in one statement (and one commit, unless ``connection``)."""
        return [r.task for r in self.submit(tasks, connection=connection)]

    def submit(self, tasks: Sequence[NewTask], *, connection: Any = None) -> list[Enqueued]:
        """Like ``enqueue_many``, but also says which tasks this call created."""
        rows = enqueue.prepare(tasks, self.registry)
        if connection is None and self._django is not False:
            connection = connections.django_default()
        if connection is not None:
            conn = connections.sync_connection(connection)
            inserted = run_sync(
                enqueue.insert(lambda batch: store.enqueue_tasks(conn, batch), rows)
            )
        else:
            inserted = self._run(_insert, rows)
        return enqueue.decode_payloads(inserted)

    # -- inspecting and managing -----------------------------------------------

    def get(self, task_id: uuid.UUID | str) -> Task:
        found = _task_id(task_id)
        task = self._run(store.get_task, found)
        if task is None:
            raise TaskNotFound(found)
        return task

    def history(self, task_id: uuid.UUID | str) -> list[TaskEvent]:
        found = _task_id(task_id)
        events = self._run(store.task_history, found)
        if not events and self._run(store.get_task, found) is None:
            raise TaskNotFound(found)
        return events

    def cancel(self, task_id: uuid.UUID | str, *, actor: str = "local") -> Task:
        """Cancel a queued or running task; finished ones raise TaskStateConflict."""
        found = _task_id(task_id)
        task = self._run(store.cancel_task, found, actor)
        if task is None:
            current = self.get(found)
            raise TaskStateConflict(found, current.status, "cancel", "queued or running")
        return task

    def retry(self, task_id: uuid.UUID | str, *, actor: str = "local") -> Task:
        """Put a failed or cancelled task back in its queue (event task_requeued)."""
        found = _task_id(task_id)
        task = self._run(store.retry_task, found, actor)
        if task is None:
            current = self.get(found)
            raise TaskStateConflict(found, current.status, "retry", "failed or cancelled")
        return task

    def wait(self, task_id: uuid.UUID | str, timeout: float = 30.0) -> Task:
        """The task once it has ended (succeeded, failed, cancelled or expired);
        TimeoutError after ``timeout`` seconds. Polls, from every 10 ms up to
        every half second, so that a quick task is seen quickly and a long one
        costs little."""
        found = _task_id(task_id)
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            task = self.get(found)
            if task.status in TERMINAL:
                return task
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"task {found} has not finished within {timeout:g}s")
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.5)

    def result(self, task_id: uuid.UUID | str, timeout: float = 30.0) -> Any:
        """What the task's handler returned, once it succeeded; TaskFailed
        (carrying the task) when it ended otherwise."""
        task = self.wait(task_id, timeout)
        if task.status is not Status.SUCCEEDED:
            raise TaskFailed(task)
        return task.result

    def _run(
        self,
        statement: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """One store statement on a pooled connection, its own transaction."""
        with self.pool.connection() as conn:
            return run_sync(statement(as_connection(PsycopgSync(conn, own=True)), *args, **kwargs))


async def _insert(conn: store.Connection, rows: Sequence[store.TaskRow]) -> list[Enqueued]:
    return await enqueue.insert(lambda batch: store.enqueue_tasks(conn, batch), rows)
