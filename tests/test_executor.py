"""Outcomes a handler chooses (Permanent, Snooze), payloads that cannot
decode, and the task context on every log line, through a real worker."""

from __future__ import annotations

import logging
import uuid

import asyncpg
import msgspec
import pytest

from taskqueue import Permanent, Snooze
from taskqueue.audit import audit
from taskqueue.client import TaskQueue
from taskqueue.logs import ConsoleFormatter, TaskContextFilter
from taskqueue.registry import Registry, TaskContext
from tests.helpers import all_in_status, running_worker, wait_until


class Order(msgspec.Struct):
    order_id: int


def outcome_registry(calls: list[tuple[str, int]]) -> Registry:
    registry = Registry()

    @registry.task("refuse", payload=Order)
    async def refuse(payload: Order, ctx: TaskContext) -> None:
        calls.append(("refuse", ctx.attempt))
        raise Permanent(f"order {payload.order_id} was deleted")

    @registry.task("later", payload=Order)
    async def later(payload: Order, ctx: TaskContext) -> str:
        calls.append(("later", ctx.attempt))
        if sum(1 for name, _ in calls if name == "later") == 1:
            raise Snooze(0.3, reason="rate limited upstream")
        return "done"

    return registry


async def trail(pool: asyncpg.Pool, task_id: uuid.UUID) -> list[tuple[str, str, int, object]]:
    rows = await pool.fetch(
        "SELECT event_type, status::text, attempt, detail FROM taskqueue.task_events"
        " WHERE task_id = $1 ORDER BY id",
        task_id,
    )
    return [(r["event_type"], r["status"], r["attempt"], r["detail"]) for r in rows]


async def test_permanent_fails_at_once_whatever_retries_are_left(
    pool: asyncpg.Pool, database_url: str
) -> None:
    calls: list[tuple[str, int]] = []
    registry = outcome_registry(calls)
    tq = TaskQueue(pool, registry)
    task = await tq.enqueue("refuse", {"order_id": 7}, max_retries=5)
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [task.id], "failed"))
    assert calls == [("refuse", 1)]
    failed = await tq.get(task.id)
    assert (failed.attempts, failed.last_error) == (1, "Permanent: order 7 was deleted")
    assert failed.completed_at is not None
    assert (await trail(pool, task.id))[-1] == (
        "task_failed",
        "failed",
        1,
        {"failure": "permanent"},
    )


async def test_snooze_comes_back_later_without_using_an_attempt(
    pool: asyncpg.Pool, database_url: str
) -> None:
    calls: list[tuple[str, int]] = []
    registry = outcome_registry(calls)
    tq = TaskQueue(pool, registry)
    task = await tq.enqueue("later", {"order_id": 1}, max_retries=0)
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [task.id], "succeeded"))
    # max_retries=0 allows one attempt: the snooze did not use it up.
    assert calls == [("later", 1), ("later", 1)]
    events = await trail(pool, task.id)
    assert [e[:3] for e in events] == [
        ("task_queued", "queued", 0),
        ("task_started", "running", 1),
        ("task_snoozed", "queued", 1),
        ("task_started", "running", 1),
        ("task_succeeded", "succeeded", 1),
    ]
    snoozed = events[2][3]
    assert isinstance(snoozed, dict)
    assert (snoozed["seconds"], snoozed["reason"]) == (0.3, "rate limited upstream")
    times = await pool.fetch(
        "SELECT at FROM taskqueue.task_events WHERE task_id = $1 AND event_type IN"
        " ('task_snoozed', 'task_started') ORDER BY id",
        task.id,
    )
    assert (times[2]["at"] - times[1]["at"]).total_seconds() >= 0.3
    done = await tq.get(task.id)
    assert (done.attempts, done.result) == (1, "done")
    assert (await audit(pool)).violations == []


async def test_a_payload_that_does_not_decode_fails_once_as_permanent(
    pool: asyncpg.Pool, database_url: str
) -> None:
    calls: list[tuple[str, int]] = []
    registry = outcome_registry(calls)
    unchecked = TaskQueue(pool, registry=None)  # a producer that skips validation
    task = await unchecked.enqueue("refuse", {"order_id": "seven"}, max_retries=3)
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [task.id], "failed"))
    assert calls == []  # the handler never ran
    failed = await unchecked.get(task.id)
    assert failed.attempts == 1
    assert failed.last_error is not None
    assert "payload does not match 'refuse'" in failed.last_error
    assert "order_id" in failed.last_error
    assert (await trail(pool, task.id))[-1] == (
        "task_failed",
        "failed",
        1,
        {"failure": "invalid_payload"},
    )


async def test_every_log_line_inside_a_handler_carries_the_task(
    pool: asyncpg.Pool, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry()

    @registry.task("chatty")
    async def chatty(payload: object, ctx: TaskContext) -> None:
        ctx.logger.info("through ctx.logger")
        logging.getLogger("myapp.billing").warning("through the app's own logger")

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    collect = Collect()
    collect.setFormatter(ConsoleFormatter())
    collect.addFilter(TaskContextFilter())
    logging.getLogger().addHandler(collect)
    caplog.set_level(logging.INFO)
    try:
        tq = TaskQueue(pool, registry)
        task = await tq.enqueue("chatty", {}, queue="mail")
        async with running_worker(database_url, registry, queues=("mail",)) as worker:
            await wait_until(lambda: all_in_status(pool, [task.id], "succeeded"))
    finally:
        logging.getLogger().removeHandler(collect)
    context = f"[task {task.id} chatty queue=mail attempt=1]"
    mine = [line for line in lines if "through" in line]
    assert len(mine) == 2
    assert all(line.endswith(context) for line in mine), mine
    record = next(r for r in caplog.records if r.getMessage() == "through the app's own logger")
    assert record.__dict__["worker_id"] == worker.worker_id
    outside = [line for line in lines if "worker" in line and "started" in line]
    assert outside
    assert all("[task" not in line for line in outside)


async def test_a_handler_knows_its_tasks_tenant_from_either_claim(
    pool: asyncpg.Pool, database_url: str
) -> None:
    registry = Registry()
    seen: dict[str, str | None] = {}

    @registry.task("whose")
    async def whose(payload: dict[str, str], ctx: TaskContext) -> None:
        seen[payload["name"]] = ctx.tenant

    tq = TaskQueue(pool, registry)
    await tq.set_limits("narrow", concurrency=5)  # its tasks come by the governed claim
    tasks = [
        await tq.enqueue("whose", {"name": "plain-acme"}, tenant="acme"),
        await tq.enqueue("whose", {"name": "plain-none"}),
        await tq.enqueue("whose", {"name": "governed-acme"}, tenant="acme", queue="narrow"),
        await tq.enqueue("whose", {"name": "governed-none"}, queue="narrow"),
    ]
    async with running_worker(database_url, registry, queues=("default", "narrow")):
        await wait_until(lambda: all_in_status(pool, [t.id for t in tasks], "succeeded"))
    assert seen == {
        "plain-acme": "acme",
        "plain-none": None,
        "governed-acme": "acme",
        "governed-none": None,
    }
