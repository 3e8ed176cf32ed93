"""taskqueue.testing: the README's example app and its tests pass as written
(run by pytest with the plugin, the way an application runs them), and the
helpers assert, refute and drain as they say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import msgspec
import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from taskqueue import Registry, TaskContext
from taskqueue.client import TaskQueue as AsyncTaskQueue
from taskqueue.errors import InvalidArgument, Permanent
from taskqueue.sync import TaskQueue
from taskqueue.testing import (
    assert_enqueued,
    drain,
    drain_async,
    enqueued,
    refute_enqueued,
)
from tests.helpers import run_audit

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> dict[str, str]:
    """The files of the README's testing example: each block names its path."""
    section = README.read_text().split("### Testing an app that enqueues", 1)[1]
    section = section.split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n# (\S+)\n(.*?)```", section, flags=re.DOTALL)
    return dict(blocks)


def test_the_readme_example_passes_as_written(tmp_path: Path, pg_server: str) -> None:
    files = readme_example()
    assert set(files) == {"shop/tasks.py", "shop/orders.py", "tests/test_orders.py"}
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    (tmp_path / "shop" / "__init__.py").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        # The plugin comes from the installed package's entry point; the
        # server is this session's, as TASKQUEUE_TEST_DATABASE_URL gives it.
        env={**os.environ, "PYTHONPATH": str(tmp_path), "TASKQUEUE_TEST_DATABASE_URL": pg_server},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


registry = Registry()


class Step(msgspec.Struct):
    left: int


@registry.task("countdown", payload=Step, max_retries=0)
async def countdown(payload: Step, ctx: TaskContext) -> int:
    if payload.left > 0:  # a handler that enqueues: drain runs that task too
        async with await AsyncTaskQueue.connect(DSN[0], registry) as tq:
            await tq.enqueue("countdown", {"left": payload.left - 1})
    return payload.left


@registry.task("refuse", max_retries=5)
async def refuse(payload: object, ctx: TaskContext) -> None:
    raise Permanent("never")


@registry.task("flaky", max_retries=3)
async def flaky(payload: object, ctx: TaskContext) -> None:
    raise RuntimeError("try again")


DSN: list[str] = [""]


def test_assert_and_refute_by_type_payload_queue_and_status(taskqueue_sync: TaskQueue) -> None:
    taskqueue_sync.enqueue("noop", {"user": {"id": 7, "name": "ada"}, "tags": ["a", "b"]})
    taskqueue_sync.enqueue("noop", {"user": {"id": 8}}, queue="mail")
    task = assert_enqueued(taskqueue_sync, type="noop", payload={"user": {"id": 7}})
    assert task.payload["tags"] == ["a", "b"]
    assert assert_enqueued(taskqueue_sync, queue="mail").payload == {"user": {"id": 8}}
    assert_enqueued(taskqueue_sync, type="noop", count=2)
    assert_enqueued(taskqueue_sync, payload={"tags": ["b"]}, status="queued")
    refute_enqueued(taskqueue_sync, type="noop", payload={"user": {"id": 9}})
    refute_enqueued(taskqueue_sync, status="succeeded")
    with pytest.raises(AssertionError, match=r"found 0; enqueued: noop\(default, queued\)"):
        assert_enqueued(taskqueue_sync, type="noop", queue="other")
    with pytest.raises(AssertionError, match=r"1 time\(s\), found 2"):
        assert_enqueued(taskqueue_sync, type="noop", count=1)
    with pytest.raises(AssertionError, match="expected no task with queue='mail'"):
        refute_enqueued(taskqueue_sync, queue="mail")
    assert [t.queue for t in enqueued(taskqueue_sync)] == ["default", "mail"]


def test_assertions_see_the_uncommitted_transaction_they_are_given(
    taskqueue_sync: TaskQueue, taskqueue_database_url: str
) -> None:
    engine = create_engine(
        taskqueue_database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    )
    try:
        with Session(engine) as session:
            taskqueue_sync.enqueue("noop", {"order": 1}, connection=session)
            assert_enqueued(session, type="noop", payload={"order": 1})
            refute_enqueued(taskqueue_sync, type="noop")  # not committed: others don't see it
            session.rollback()
            refute_enqueued(session, type="noop")
    finally:
        engine.dispose()


def test_drain_runs_tasks_and_those_their_handlers_enqueue(
    taskqueue_database_url: str,
) -> None:
    DSN[0] = taskqueue_database_url
    with TaskQueue.connect(taskqueue_database_url, None) as tq:  # None: any type
        tq.enqueue("countdown", {"left": 2})
        tq.enqueue("noop")  # not the registry's type: left queued, uncharged
        ran = drain(tq, registry)
        assert [(r.type, r.payload, r.outcome, r.result) for r in ran] == [
            ("countdown", {"left": 2}, "succeeded", 2),
            ("countdown", {"left": 1}, "succeeded", 1),
            ("countdown", {"left": 0}, "succeeded", 0),
        ]
        assert_enqueued(tq, type="countdown", status="succeeded", count=3)
        assert_enqueued(tq, type="noop", status="queued")
        events = [e.event_type for e in tq.history(ran[0].task_id)]
        assert events == ["task_queued", "task_started", "task_succeeded"]


def test_drain_records_failures_as_a_worker_would(taskqueue_sync: TaskQueue) -> None:
    taskqueue_sync.registry = registry
    refused = taskqueue_sync.enqueue("refuse")
    flaky_task = taskqueue_sync.enqueue("flaky")
    ran = drain(taskqueue_sync, registry)
    assert {r.type: (r.outcome, r.error) for r in ran} == {
        "refuse": ("permanent", "Permanent: never"),
        "flaky": ("error", "RuntimeError: try again"),
    }
    assert taskqueue_sync.get(refused.id).status == "failed"
    retried = taskqueue_sync.get(flaky_task.id)
    assert (retried.status, retried.attempts) == ("queued", 1)  # due after its backoff
    assert drain(taskqueue_sync, registry) == []


def test_drain_takes_a_limit_and_queues(taskqueue_sync: TaskQueue) -> None:
    taskqueue_sync.registry = registry
    for queue in ("a", "a", "b"):
        taskqueue_sync.enqueue("refuse", queue=queue)
    assert [r.queue for r in drain(taskqueue_sync, registry, queues=["a"], limit=1)] == ["a"]
    assert [r.queue for r in drain(taskqueue_sync, registry)] == ["a", "b"]


def test_drain_on_a_psycopg_connection_needs_autocommit(
    taskqueue_sync: TaskQueue, taskqueue_database_url: str
) -> None:
    taskqueue_sync.registry = registry
    taskqueue_sync.enqueue("refuse")
    with psycopg.connect(taskqueue_database_url) as conn, pytest.raises(InvalidArgument):
        drain(conn, registry)
    with psycopg.connect(taskqueue_database_url, autocommit=True) as conn:
        assert [r.outcome for r in drain(conn, registry)] == ["permanent"]


async def test_drain_async_runs_on_the_async_api_and_leaves_sound_trails(
    tq: AsyncTaskQueue, pool: asyncpg.Pool
) -> None:
    tq.registry = registry
    await tq.enqueue("refuse")
    await tq.enqueue("flaky")
    assert [r.outcome for r in await drain_async(tq, registry)] == ["permanent", "error"]
    assert await run_audit(pool) == []


async def test_drain_gives_parent_results_to_the_types_that_ask_for_them(
    pool: asyncpg.Pool,
) -> None:
    parents = Registry()

    @parents.task("part")
    async def part(payload: int, ctx: TaskContext) -> int:
        return payload

    @parents.task("total", parent_results=True)
    async def total(payload: None, ctx: TaskContext) -> int:
        return sum(p["result"] for p in ctx.parent_results.values())

    tq = AsyncTaskQueue(pool, parents)
    a, b = await tq.enqueue("part", 2), await tq.enqueue("part", 5)
    await tq.workflows.enqueue("total", depends_on=[a.id, b.id])
    ran = await drain_async(tq, parents)
    assert [(r.type, r.outcome, r.result) for r in ran] == [
        ("part", "succeeded", 2),
        ("part", "succeeded", 5),
        ("total", "succeeded", 7),
    ]
