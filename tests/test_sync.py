"""The synchronous TaskQueue: the async API's ids, validation, idempotency
and errors (the same code runs), its reads and actions, and waiting for a
result that a real worker produces."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskqueue.client import TaskQueue as AsyncTaskQueue
from taskqueue.errors import (
    InvalidTask,
    TaskFailed,
    TaskNotFound,
    TaskStateConflict,
    UnknownTaskType,
)
from taskqueue.models import NewTask, Status
from taskqueue.sync import TaskQueue
from tests.helpers import running_worker


@contextmanager
def worker_thread(database_url: str) -> Iterator[None]:
    """A real worker (built-in handlers) on its own event loop in a thread."""
    ready = threading.Event()
    failed: list[BaseException] = []
    loop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        stop = asyncio.Event()
        loop_box.append((asyncio.get_running_loop(), stop))
        async with running_worker(database_url):
            ready.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "worker did not start"
    assert not failed, failed
    try:
        yield
    finally:
        loop, stop = loop_box[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        assert not failed, failed


def test_enqueue_returns_what_get_reads(taskqueue_sync: TaskQueue) -> None:
    task = taskqueue_sync.enqueue(
        "noop", {"when": {1, 2}}, queue="mail", priority=3, delay=60, name="hello"
    )
    assert task.id.version == 7
    assert task.status is Status.QUEUED
    assert task.payload == {"when": [1, 2]}
    stored = taskqueue_sync.get(task.id)
    assert stored == task
    assert [e.event_type for e in taskqueue_sync.history(str(task.id))] == ["task_queued"]


async def test_validation_errors_are_the_async_apis(
    taskqueue_sync: TaskQueue, tq: AsyncTaskQueue
) -> None:
    bad: list[dict[str, Any]] = [
        {"priority": 1.5},
        {"max_retries": True},
        {"queue": "has space"},
        {"run_at": datetime(2030, 1, 1)},  # no zone
        {"delay": 1, "run_at": datetime.now(UTC) + timedelta(hours=1)},
        {"payload": {"nul": "\x00"}},
        {"idempotency_key": ""},
    ]
    for kwargs in bad:
        with pytest.raises(InvalidTask) as sync_raised:
            taskqueue_sync.enqueue("noop", **kwargs)
        with pytest.raises(InvalidTask) as async_raised:
            await tq.enqueue("noop", **kwargs)
        assert str(sync_raised.value) == str(async_raised.value)
    with pytest.raises(UnknownTaskType):
        taskqueue_sync.enqueue("no_such_type")
    with pytest.raises(InvalidTask, match=r"tasks\[1\]\.priority"):
        taskqueue_sync.enqueue_many([NewTask(type="noop"), NewTask(type="noop", priority=10**9)])
    assert await tq.list() == []  # nothing reached the database


def test_idempotency_key_returns_the_existing_task(taskqueue_sync: TaskQueue) -> None:
    first = taskqueue_sync.enqueue("noop", {"n": 1}, idempotency_key="order-7")
    again = taskqueue_sync.enqueue("noop", {"n": 2}, idempotency_key="order-7")
    assert again.id == first.id
    assert again.payload == {"n": 1}
    results = taskqueue_sync.submit(
        [
            NewTask(type="noop", idempotency_key="order-7"),
            NewTask(type="noop", idempotency_key="order-8"),
        ]
    )
    assert [(r.task.id == first.id, r.created) for r in results] == [(True, False), (False, True)]


def test_a_sequence_key_makes_the_next_task_wait(taskqueue_sync: TaskQueue) -> None:
    first = taskqueue_sync.enqueue("noop", sequence_key="k", concurrency_key="c")
    second = taskqueue_sync.enqueue("noop", sequence_key="k")
    assert (first.status, second.status) == (Status.QUEUED, Status.WAITING)
    assert taskqueue_sync.get(first.id).concurrency_key == "c"


def test_enqueue_many_is_one_batch(taskqueue_sync: TaskQueue) -> None:
    tasks = taskqueue_sync.enqueue_many([NewTask(type="noop", payload={"i": i}) for i in range(5)])
    assert [taskqueue_sync.get(t.id).payload for t in tasks] == [{"i": i} for i in range(5)]
    assert len({t.created_at for t in tasks}) == 1  # one statement


def test_cancel_and_retry(taskqueue_sync: TaskQueue) -> None:
    task = taskqueue_sync.enqueue("noop", delay=3600)
    assert taskqueue_sync.cancel(task.id).status is Status.CANCELLED
    with pytest.raises(TaskStateConflict):
        taskqueue_sync.cancel(task.id)
    assert taskqueue_sync.retry(task.id).status is Status.QUEUED
    with pytest.raises(TaskStateConflict):
        taskqueue_sync.retry(task.id)
    assert [e.event_type for e in taskqueue_sync.history(task.id)] == [
        "task_queued",
        "task_cancelled",
        "task_requeued",
    ]


def test_unknown_and_malformed_ids(taskqueue_sync: TaskQueue) -> None:
    with pytest.raises(TaskNotFound):
        taskqueue_sync.get(uuid.uuid4())
    with pytest.raises(TaskNotFound):
        taskqueue_sync.history("not-a-uuid")
    with pytest.raises(InvalidTask):
        taskqueue_sync.get(42)  # type: ignore[arg-type]


def test_result_waits_for_a_real_worker(taskqueue_sync: TaskQueue, database_url: str) -> None:
    ok = taskqueue_sync.enqueue("noop")
    failing = taskqueue_sync.enqueue("fail", {"message": "boom"}, max_retries=0)
    with worker_thread(database_url):
        assert taskqueue_sync.result(ok.id, timeout=30) is None
        with pytest.raises(TaskFailed) as raised:
            taskqueue_sync.result(failing.id, timeout=30)
    assert raised.value.task.status is Status.FAILED
    assert "boom" in (raised.value.task.last_error or "")
    assert taskqueue_sync.wait(ok.id).status is Status.SUCCEEDED


def test_result_times_out_while_nothing_runs_the_task(taskqueue_sync: TaskQueue) -> None:
    task = taskqueue_sync.enqueue("noop", delay=3600)
    with pytest.raises(TimeoutError):
        taskqueue_sync.result(task.id, timeout=0.05)


def test_registry_none_accepts_any_type(database_url: str) -> None:
    with TaskQueue.connect(database_url, None) as tq:
        assert tq.enqueue("made_up", {"x": 1}).type == "made_up"


def test_a_value_postgresql_refuses_through_psycopg_is_the_inputs_fault(
    taskqueue_sync: TaskQueue,
) -> None:
    import msgspec

    from taskqueue import enqueue, store
    from taskqueue.errors import InvalidTask
    from taskqueue.store.adapters import PsycopgSync, as_connection, run_sync

    # Past prepare(), as a validation gap would let it through: PostgreSQL
    # refuses NUL in text. Through psycopg it is a 422-kind error, as through asyncpg.
    (row,) = enqueue.prepare([NewTask(type="noop")], taskqueue_sync.registry)
    row = msgspec.structs.replace(row, name="bad\x00")
    with taskqueue_sync.pool.connection() as conn, pytest.raises(InvalidTask) as refused:
        own = as_connection(PsycopgSync(conn, own=True))
        run_sync(enqueue.insert(lambda batch: store.enqueue_tasks(own, batch), [row]))
    assert "PostgreSQL refused it" in str(refused.value)


def test_expiry_and_callback_options_are_the_async_apis(taskqueue_sync: TaskQueue) -> None:
    hook = {"url": "https://hooks.example/done", "events": ["succeeded"]}
    task = taskqueue_sync.enqueue("noop", ttl_seconds=60, callback=hook)
    assert task.expires_at is not None
    assert abs(task.expires_at - task.created_at - timedelta(seconds=60)) < timedelta(seconds=1)
    assert task.callback is not None and task.callback["url"] == hook["url"]
    later = datetime.now(UTC) + timedelta(hours=2)
    assert taskqueue_sync.enqueue("noop", expires_at=later).expires_at == later
    with pytest.raises(InvalidTask) as both:
        taskqueue_sync.enqueue("noop", expires_at=later, ttl_seconds=5)
    assert "ttl_seconds" in str(both.value) or "expires_at" in str(both.value)
    with pytest.raises(TypeError):
        taskqueue_sync.enqueue("noop", queu="typo")  # type: ignore[call-arg]


def test_enqueue_stamps_the_tenant(taskqueue_sync: TaskQueue) -> None:
    task = taskqueue_sync.enqueue("noop", tenant="acme")
    assert task.tenant == "acme"
    assert taskqueue_sync.get(task.id).tenant == "acme"
