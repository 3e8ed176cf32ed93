"""Retry policies: each rule with a real worker, the rule in the event's
detail, and the precedence of ``decide`` on its own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from taskqueue.backoff import Backoff
from taskqueue.client import TaskQueue
from taskqueue.errors import Permanent
from taskqueue.registry import Registry, TaskContext
from taskqueue.retry_policy import Decision, RetryPolicy, Rule, decide
from tests.helpers import all_in_status, run_audit, running_worker, wait_until

QUICK = Backoff(base=0.01, cap=0.01)

_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "KeyError": KeyError,
    "ConnectionError": ConnectionError,
    "ConnectionRefusedError": ConnectionRefusedError,
    "RuntimeError": RuntimeError,
}


def failing(registry: Registry, name: str, **policy: Any) -> None:
    """Type ``name`` raises the exception its payload names (``Permanent`` too),
    or sleeps for ``sleep`` seconds."""

    @registry.task(name, **policy)
    async def handler(payload: dict[str, Any], ctx: TaskContext) -> None:
        if "sleep" in payload:
            await asyncio.sleep(payload["sleep"])
        if payload.get("raise") == "Permanent":
            raise Permanent("no point")
        raise _ERRORS[payload["raise"]]("boom")


async def trail(pool: asyncpg.Pool, task_id: uuid.UUID) -> list[tuple[str, Any]]:
    """(event type, detail) of each failure event, in order."""
    rows = await pool.fetch(
        "SELECT event_type, detail FROM taskqueue.task_events WHERE task_id = $1"
        " AND event_type IN ('task_retry_scheduled', 'task_failed') ORDER BY id",
        task_id,
    )
    return [(r["event_type"], r["detail"]) for r in rows]


def without_retry_at(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if k != "retry_at"}


async def run_until_failed(
    pool: asyncpg.Pool, database_url: str, registry: Registry, *task_ids: uuid.UUID
) -> None:
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, list(task_ids), "failed"))
    assert await run_audit(pool) == []


async def test_discard_on_fails_at_once_whatever_attempts_are_left(
    pool: asyncpg.Pool, database_url: str
) -> None:
    registry = Registry()
    failing(registry, "t", discard_on=(ValueError,), backoff=QUICK, max_retries=5)
    tq = TaskQueue(pool, registry)
    discarded = await tq.enqueue("t", {"raise": "ValueError"})
    retried = await tq.enqueue("t", {"raise": "KeyError"}, max_retries=1)
    await run_until_failed(pool, database_url, registry, discarded.id, retried.id)
    assert (await tq.get(discarded.id)).attempts == 1
    assert await trail(pool, discarded.id) == [
        ("task_failed", {"failure": "error", "rule": "discard_on", "exception": "ValueError"})
    ]
    # Not discarded: retried after the type's backoff, then out of attempts.
    (retry, failed) = await trail(pool, retried.id)
    assert retry[0] == "task_retry_scheduled"
    assert without_retry_at(retry[1]) == {
        "failure": "error",
        "rule": "backoff",
        "exception": "KeyError",
    }
    assert failed == (
        "task_failed",
        {"failure": "error", "rule": "max_retries", "exception": "KeyError"},
    )


async def test_retry_on_retries_only_the_listed_exceptions(
    pool: asyncpg.Pool, database_url: str
) -> None:
    registry = Registry()
    failing(registry, "t", retry_on=(ConnectionError,), backoff=QUICK, max_retries=1)
    tq = TaskQueue(pool, registry)
    other = await tq.enqueue("t", {"raise": "KeyError"})
    listed = await tq.enqueue("t", {"raise": "ConnectionRefusedError"})  # a subclass
    await run_until_failed(pool, database_url, registry, other.id, listed.id)
    assert (await tq.get(other.id)).attempts == 1
    assert await trail(pool, other.id) == [
        ("task_failed", {"failure": "error", "rule": "retry_on", "exception": "KeyError"})
    ]
    assert (await tq.get(listed.id)).attempts == 2
    assert [(kind, detail["rule"]) for kind, detail in await trail(pool, listed.id)] == [
        ("task_retry_scheduled", "backoff"),
        ("task_failed", "max_retries"),
    ]


async def test_max_elapsed_schedules_no_retry_past_it(
    pool: asyncpg.Pool, database_url: str
) -> None:
    registry = Registry()
    # Retries 0.1 s apart, attempts to spare: the time bound ends it.
    failing(registry, "t", max_elapsed=0.5, backoff_on={ConnectionError: 0.1}, max_retries=100)
    failing(registry, "far", max_elapsed=1.0, backoff_on={ConnectionError: 30.0})
    tq = TaskQueue(pool, registry)
    bounded = await tq.enqueue("t", {"raise": "ConnectionError"})
    too_far = await tq.enqueue("far", {"raise": "ConnectionError"})
    await run_until_failed(pool, database_url, registry, bounded.id, too_far.id)
    events = await trail(pool, bounded.id)
    assert 1 < len(events) < 10
    assert all(
        (kind, detail["rule"]) == ("task_retry_scheduled", "backoff_on")
        for kind, detail in events[:-1]
    )
    assert events[-1] == (
        "task_failed",
        {"failure": "error", "rule": "max_elapsed", "exception": "ConnectionError"},
    )
    done = await tq.get(bounded.id)
    assert done.completed_at is not None
    # The last retry was due within the bound; the one refused would not have been.
    assert done.completed_at + timedelta(seconds=0.1) > done.created_at + timedelta(seconds=0.5)
    # A first retry already past the bound: failed after one attempt.
    assert await trail(pool, too_far.id) == [
        ("task_failed", {"failure": "error", "rule": "max_elapsed", "exception": "ConnectionError"})
    ]


async def test_per_exception_backoff_beats_the_custom_function_which_beats_the_default(
    pool: asyncpg.Pool, database_url: str
) -> None:
    seen: list[tuple[int, str]] = []

    def custom(attempt: int, exc: BaseException) -> float:
        seen.append((attempt, type(exc).__name__))
        return 0.3 * attempt

    registry = Registry()
    failing(
        registry,
        "t",
        backoff=custom,
        backoff_on={OSError: 5.0, ConnectionError: 0.05},
        max_retries=1,
    )
    tq = TaskQueue(pool, registry)
    by_class = await tq.enqueue("t", {"raise": "ConnectionRefusedError"})
    by_function = await tq.enqueue("t", {"raise": "RuntimeError"})
    await run_until_failed(pool, database_url, registry, by_class.id, by_function.id)
    delays = {
        r["task_id"]: (r["detail"]["rule"], r["retry_at"] - r["at"])
        for r in await pool.fetch(
            "SELECT task_id, at, detail, (detail->>'retry_at')::timestamptz AS retry_at"
            " FROM taskqueue.task_events WHERE event_type = 'task_retry_scheduled'"
        )
    }
    # ConnectionRefusedError: ConnectionError's entry (more specific than OSError's).
    assert delays[by_class.id] == ("backoff_on", timedelta(seconds=0.05))
    assert delays[by_function.id] == ("backoff_function", timedelta(seconds=0.3))
    assert seen == [(1, "RuntimeError")]


async def test_a_timeout_is_a_timeout_error_to_the_policy(
    pool: asyncpg.Pool, database_url: str
) -> None:
    registry = Registry()
    failing(registry, "t", discard_on=(TimeoutError,), timeout_seconds=0.1, max_retries=3)
    tq = TaskQueue(pool, registry)
    slow = await tq.enqueue("t", {"sleep": 30, "raise": "RuntimeError"})
    await run_until_failed(pool, database_url, registry, slow.id)
    assert await trail(pool, slow.id) == [
        ("task_failed", {"failure": "timeout", "rule": "discard_on", "exception": "TimeoutError"})
    ]


async def test_permanent_goes_before_every_policy_rule(
    pool: asyncpg.Pool, database_url: str
) -> None:
    registry = Registry()
    failing(registry, "t", retry_on=(Exception,), max_retries=3)
    tq = TaskQueue(pool, registry)
    task = await tq.enqueue("t", {"raise": "Permanent"})
    await run_until_failed(pool, database_url, registry, task.id)
    assert await trail(pool, task.id) == [
        ("task_failed", {"failure": "permanent", "rule": "permanent", "exception": "Permanent"})
    ]


def test_precedence_discard_then_retry_on_then_max_retries() -> None:
    policy = RetryPolicy(discard_on=(KeyError,), retry_on=(LookupError,))
    args: dict[str, Any] = {"attempt": 3, "max_retries": 1, "backoff": QUICK}
    assert decide(policy, KeyError(), **args) == Decision(False, 0.0, Rule.DISCARD_ON)
    assert decide(policy, ValueError(), **args) == Decision(False, 0.0, Rule.RETRY_ON)
    assert decide(policy, IndexError(), **args) == Decision(False, 0.0, Rule.MAX_RETRIES)
    retried = decide(policy, IndexError(), attempt=1, max_retries=1, backoff=QUICK)
    assert (retried.retry, retried.rule) == (True, Rule.BACKOFF)


def test_a_broken_backoff_function_falls_back_to_the_backoff() -> None:
    def broken(attempt: int, exc: BaseException) -> float:
        raise ZeroDivisionError

    def negative(attempt: int, exc: BaseException) -> float:
        return -1.0

    for function in (broken, negative):
        policy = RetryPolicy(backoff_function=function)
        decision = decide(policy, ValueError(), attempt=1, max_retries=3, backoff=QUICK)
        assert (decision.retry, decision.rule) == (True, Rule.BACKOFF)
        assert 0.005 <= decision.delay <= 0.01  # QUICK's, with its equal jitter


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"retry_on": (ValueError, "x")}, "retry_on"),
        ({"discard_on": [ValueError]}, "discard_on"),
        ({"max_elapsed": 0}, "max_elapsed"),
        ({"max_elapsed": float("nan")}, "max_elapsed"),
        ({"backoff_on": ((ValueError, -1.0),)}, "backoff_on"),
        ({"backoff_on": ((int, 1.0),)}, "backoff_on"),
    ],
)
def test_a_policy_refuses_what_it_cannot_apply(fields: dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        RetryPolicy(**fields)


def test_a_type_without_policy_arguments_has_no_policy() -> None:
    registry = Registry()
    failing(registry, "plain", backoff=QUICK)
    failing(registry, "one", discard_on=ValueError)
    plain, one = registry.require("plain"), registry.require("one")
    assert (plain.retry, plain.backoff) == (None, QUICK)
    assert one.retry == RetryPolicy(discard_on=(ValueError,))
