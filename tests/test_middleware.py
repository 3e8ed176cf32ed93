"""Handler middleware through a real worker: the order they run in, outcomes
a middleware chooses, the built-ins, and handlers without any left bare."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from taskqueue import Snooze
from taskqueue.client import TaskQueue
from taskqueue.middleware import log_execution, permanent_on, report_errors
from taskqueue.registry import Middleware, Next, Registry, TaskContext, load_registry
from tests.helpers import all_in_status, running_worker, wait_until


def recording(name: str, calls: list[str]) -> Middleware:
    async def around(ctx: TaskContext, payload: Any, call_next: Next) -> Any:
        calls.append(f"{name}>")
        try:
            return await call_next(ctx, payload)
        finally:
            calls.append(f"<{name}")

    return around


async def event_types(pool: asyncpg.Pool, task_id: uuid.UUID) -> list[str]:
    rows = await pool.fetch(
        "SELECT event_type FROM taskqueue.task_events WHERE task_id = $1 ORDER BY id", task_id
    )
    return [r["event_type"] for r in rows]


async def test_registry_middleware_runs_outside_a_types_own_in_the_order_given(
    pool: asyncpg.Pool, database_url: str
) -> None:
    calls: list[str] = []
    registry = Registry()
    registry.use(recording("a", calls))

    @registry.task("ordered", middleware=[recording("c", calls), recording("d", calls)])
    async def ordered(payload: Any, ctx: TaskContext) -> str:
        calls.append("handler")
        return "done"

    registry.use(recording("b", calls))  # added later: still applies, inside "a"
    task = await TaskQueue(pool, registry).enqueue("ordered")
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [task.id], "succeeded"))
    assert calls == ["a>", "b>", "c>", "d>", "handler", "<d", "<c", "<b", "<a"]
    assert (await TaskQueue(pool, registry).get(task.id)).result == "done"


async def test_a_modules_middleware_wraps_its_own_handlers_only(
    pool: asyncpg.Pool, database_url: str
) -> None:
    calls: dict[str, list[str]] = {"mine": [], "noop": []}

    def per_type(name: str) -> Middleware:
        async def around(ctx: TaskContext, payload: Any, call_next: Next) -> Any:
            calls[ctx.type].append(f"{name}>")
            try:
                return await call_next(ctx, payload)
            finally:
                calls[ctx.type].append(f"<{name}")

        return around

    module = Registry()
    module.use(per_type("module"))

    @module.task("mine")
    async def mine(payload: Any, ctx: TaskContext) -> None:
        calls["mine"].append("handler")

    combined = load_registry([])  # the built-ins, as a worker loads them
    combined.include(module)
    combined.use(per_type("worker"))
    tq = TaskQueue(pool, combined)
    task = await tq.enqueue("mine")
    builtin = await tq.enqueue("noop")
    async with running_worker(database_url, combined):
        await wait_until(lambda: all_in_status(pool, [task.id, builtin.id], "succeeded"))
    assert calls["mine"] == ["worker>", "module>", "handler", "<module", "<worker"]
    assert calls["noop"] == ["worker>", "<worker"]


async def test_a_middleware_decides_the_outcome(pool: asyncpg.Pool, database_url: str) -> None:
    registry = Registry()

    async def swallow(ctx: TaskContext, payload: Any, call_next: Next) -> Any:
        try:
            return await call_next(ctx, payload)
        except KeyError:
            return {"recovered": True}

    async def later(ctx: TaskContext, payload: Any, call_next: Next) -> Any:
        raise Snooze(3600, reason="not before the upstream is back")

    @registry.task("no_such_record", middleware=[permanent_on(LookupError)])
    async def no_such_record(payload: Any, ctx: TaskContext) -> None:
        raise IndexError("record 7 is gone")

    @registry.task("recovered", middleware=[swallow])
    async def recovered(payload: Any, ctx: TaskContext) -> None:
        raise KeyError("x")

    @registry.task("snoozed", middleware=[later])
    async def snoozed(payload: Any, ctx: TaskContext) -> None:
        raise AssertionError("a middleware that does not call on never reaches the handler")

    tq = TaskQueue(pool, registry)
    gone = await tq.enqueue("no_such_record", max_retries=5)
    fine = await tq.enqueue("recovered", max_retries=5)
    asleep = await tq.enqueue("snoozed")
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [gone.id], "failed"))
        await wait_until(lambda: all_in_status(pool, [fine.id], "succeeded"))

        async def snoozed_once() -> bool:
            return await event_types(pool, asleep.id) == [
                "task_queued",
                "task_started",
                "task_snoozed",
            ]

        await wait_until(snoozed_once)
    failed = await tq.get(gone.id)
    assert failed.attempts == 1, "Permanent: no retry, whatever retries were left"
    assert failed.last_error == "Permanent: IndexError: record 7 is gone"
    assert (await tq.get(fine.id)).result == {"recovered": True}


async def test_timeouts_still_cut_a_wrapped_handler_short(
    pool: asyncpg.Pool, database_url: str
) -> None:
    registry = Registry()

    async def catch_everything(ctx: TaskContext, payload: Any, call_next: Next) -> Any:
        try:
            return await call_next(ctx, payload)
        except Exception:
            return "swallowed"  # a timeout is a cancellation: not caught here

    @registry.task("slow", middleware=[catch_everything], timeout_seconds=0.2)
    async def slow(payload: Any, ctx: TaskContext) -> None:
        await asyncio.sleep(60)

    task = await TaskQueue(pool, registry).enqueue("slow", max_retries=0)
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [task.id], "failed"))
    assert (await TaskQueue(pool, registry).get(task.id)).last_error == (
        "timed out after 0.2 seconds"
    )


async def test_report_errors_reports_then_lets_the_failure_take_its_course(
    pool: asyncpg.Pool, database_url: str
) -> None:
    reported: list[tuple[str, int]] = []

    def report(exc: BaseException, ctx: TaskContext) -> None:
        reported.append((str(exc), ctx.attempt))
        if ctx.attempt == 2:
            raise RuntimeError("the error tracker is down")

    registry = Registry()
    registry.use(report_errors(report))

    @registry.task("flaky")
    async def flaky(payload: Any, ctx: TaskContext) -> None:
        raise ValueError(f"attempt {ctx.attempt}")

    @registry.task("sleepy")
    async def sleepy(payload: Any, ctx: TaskContext) -> None:
        raise Snooze(3600)

    tq = TaskQueue(pool, registry)
    task = await tq.enqueue("flaky", max_retries=2)
    snoozing = await tq.enqueue("sleepy")
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [task.id], "failed"))
    assert reported == [("attempt 1", 1), ("attempt 2", 2), ("attempt 3", 3)]
    assert (await tq.get(task.id)).attempts == 3
    assert (await tq.get(snoozing.id)).status == "queued"  # snoozed, and not reported


async def test_log_execution_logs_start_and_end_with_the_task_fields(
    pool: asyncpg.Pool, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskqueue.task")
    registry = Registry()
    registry.use(log_execution)

    @registry.task("logged")
    async def logged(payload: Any, ctx: TaskContext) -> None:
        return None

    from taskqueue.logs import TaskContextFilter

    caplog.handler.addFilter(TaskContextFilter())
    task = await TaskQueue(pool, registry).enqueue("logged")
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [task.id], "succeeded"))
    lines = [r for r in caplog.records if r.name == "taskqueue.task"]
    assert [r.getMessage().split(" ")[0] for r in lines] == ["started", "logged"]
    assert "succeeded in" in lines[1].getMessage()
    assert {getattr(r, "task_id", None) for r in lines} == {str(task.id)}


def test_a_handler_without_middleware_is_called_directly() -> None:
    registry = Registry()

    @registry.task("bare")
    async def bare(payload: Any, ctx: TaskContext) -> None:
        return None

    spec = registry.get("bare")
    assert spec is not None
    assert spec.run is bare  # nothing in between: no cost per task
    registry.use(log_execution)
    wrapped = registry.get("bare")
    assert wrapped is not None
    assert wrapped.run is not bare
    assert wrapped.handler is bare


async def test_the_readme_middleware_example_runs_as_described(
    pool: asyncpg.Pool, database_url: str
) -> None:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("### Handler middleware", 1)[1]
    (example,) = re.findall(r"```python\n(.*?)```", section.split("\n### ", 1)[0], re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    registry = namespace["registry"]
    assert isinstance(registry, Registry)
    tq = TaskQueue(pool, registry)
    synced = await tq.enqueue("sync_account", {"account": 7})
    broken = await tq.enqueue("sync_account", {}, max_retries=3)
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [synced.id], "succeeded"))
        await wait_until(lambda: all_in_status(pool, [broken.id], "failed"))
    assert (await tq.get(synced.id)).result == "default/7"
    failed = await tq.get(broken.id)
    assert failed.attempts == 1
    assert failed.last_error == "Permanent: KeyError: 'account'"
