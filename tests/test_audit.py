"""`taskqueue audit`: the trail rules one by one, then the command on a real
database after a real worker ran a mix of outcomes."""

from __future__ import annotations

import asyncio
import sys
import uuid

import asyncpg
import pytest

from taskqueue.audit import Event, TaskRow, audit, check_trail
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from tests.helpers import running_worker, wait_until

TASK = uuid.uuid4()


def ev(kind: str, status: str, attempt: int = 0, worker: str | None = None) -> Event:
    return Event(kind, status, attempt, worker)


def problems(events: list[Event], task: TaskRow | None) -> list[str]:
    return [v.problem for v in check_trail(TASK, events, task)]


SOUND = [
    ev("task_queued", "queued"),
    ev("task_started", "running", 1, "w1"),
    ev("task_retry_scheduled", "queued", 1, "w1"),
    ev("task_started", "running", 2, "w2"),
    ev("task_released", "queued", 2, "w2"),  # not charged: the next start is 2 again
    ev("task_started", "running", 2, "w1"),
    ev("task_snoozed", "queued", 2, "w1"),
    ev("task_started", "running", 2, "w2"),
    ev("task_lease_expired", "queued", 2, "w2"),
    ev("task_started", "running", 3, "w1"),
    ev("task_failed", "failed", 3, "w1"),
    ev("task_requeued", "queued"),  # a fresh budget: attempts start again
    ev("task_started", "running", 1, "w2"),
    ev("task_succeeded", "succeeded", 1, "w2"),
]


def test_a_sound_trail_has_no_violations() -> None:
    assert problems(SOUND, TaskRow("succeeded", 1, 2)) == []
    assert problems([*SOUND, ev("task_deleted", "succeeded")], None) == []
    running = [ev("task_queued", "queued"), ev("task_started", "running", 1, "w")]
    assert problems(running, TaskRow("running", 1, 0)) == []


def test_an_expiry_ends_a_queued_trail_and_nothing_else() -> None:
    expired = [
        ev("task_queued", "queued"),
        ev("task_started", "running", 1, "w1"),
        ev("task_retry_scheduled", "queued", 1, "w1"),
        ev("task_expired", "expired", 1, "w2"),
        ev("task_deleted", "expired", 1),
    ]
    assert problems(expired, None) == []
    assert problems(expired[:4], TaskRow("expired", 1, 3)) == []
    running = [ev("task_queued", "queued"), ev("task_started", "running", 1, "w1")]
    assert problems([*running, ev("task_expired", "expired", 1, "w1")], None) == [
        "task_expired ends attempt 1, which is not a way out of running",
        "the task's row is gone without task_deleted",
    ]


@pytest.mark.parametrize(
    ("events", "task", "expected"),
    [
        (
            [ev("task_started", "running", 1, "w")],
            TaskRow("running", 1, 3),
            "the trail starts with task_started, not task_queued",
        ),
        (
            [
                ev("task_queued", "queued"),
                ev("task_started", "running", 1, "w1"),
                ev("task_started", "running", 2, "w2"),
            ],
            TaskRow("running", 2, 3),
            "task_started (attempt 2) while attempt 1 was still running",
        ),
        (
            [
                ev("task_queued", "queued"),
                ev("task_started", "running", 1, "w1"),
                ev("task_succeeded", "succeeded", 1, "w2"),
            ],
            TaskRow("succeeded", 1, 3),
            "task_succeeded by w2 for attempt 1, but attempt 1 was started by w1",
        ),
        (
            [ev("task_queued", "queued"), ev("task_started", "running", 2, "w")],
            TaskRow("running", 2, 3),
            "task_started with attempt 2, expected 1",
        ),
        (
            [
                ev("task_queued", "queued"),
                ev("task_started", "running", 1, "w"),
                ev("task_retry_scheduled", "queued", 1, "w"),
            ],
            TaskRow("queued", 1, 0),
            "task_retry_scheduled after attempt 1 with no retries left",
        ),
        (
            [
                ev("task_queued", "queued"),
                ev("task_started", "running", 1, "w"),
                ev("task_released", "queued", 1, "w"),
                ev("task_started", "running", 1, "w"),
                ev("task_lease_expired", "queued", 1, "w"),
                ev("task_started", "running", 2, "w"),
            ],
            TaskRow("running", 2, 0),
            "attempt 2 exceeds max_retries + 1 = 1",
        ),
        (
            [ev("task_queued", "queued"), ev("task_succeeded", "succeeded", 1, "w")],
            TaskRow("succeeded", 1, 3),
            "task_succeeded while queued",
        ),
        (
            [
                ev("task_queued", "queued"),
                ev("task_started", "running", 1, "w"),
                ev("task_failed", "queued", 1, "w"),
            ],
            TaskRow("failed", 1, 0),
            "task_failed recorded status queued, expected failed",
        ),
        (
            [ev("task_queued", "queued"), ev("task_cancelled", "cancelled")],
            TaskRow("queued", 0, 3),
            "the trail ends cancelled, the task is queued",
        ),
        (
            [
                ev("task_queued", "queued"),
                ev("task_started", "running", 1, "w"),
                ev("task_succeeded", "succeeded", 1, "w"),
            ],
            TaskRow("succeeded", 2, 3),
            "the task has attempts = 2, its trail says 1",
        ),
        (
            [ev("task_queued", "queued"), ev("task_deleted", "queued")],
            None,
            "task_deleted while queued",
        ),
        ([ev("task_queued", "queued")], None, "the task's row is gone without task_deleted"),
        ([], TaskRow("queued", 0, 3), "the task has no events"),
    ],
)
def test_each_rule_names_what_it_found(
    events: list[Event], task: TaskRow | None, expected: str
) -> None:
    assert expected in problems(events, task)


async def test_a_real_workers_trails_are_sound_and_tampering_is_found(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    tasks = await tq.enqueue_many(
        [NewTask(type="noop") for _ in range(30)]
        + [NewTask(type="fail", max_retries=2) for _ in range(5)]
        + [NewTask(type="sleep", payload={"seconds": 30}, timeout_seconds=0.1, max_retries=0)]
    )
    cancelled = await tq.enqueue("noop", delay=3600)
    await tq.cancel(cancelled.id)
    ids = [t.id for t in tasks]
    async with running_worker(database_url):

        async def all_finished() -> bool:
            count = await pool.fetchval(
                "SELECT count(*) FROM taskqueue.tasks WHERE id = ANY($1)"
                " AND status IN ('succeeded', 'failed')",
                ids,
            )
            return bool(count == len(ids))

        await wait_until(all_finished)
    await tq.retry(cancelled.id)
    report = await audit(pool)
    assert (report.tasks, report.violations) == (37, [])
    assert report.events > 37 * 3

    # A second start of a finished task, as a broken worker would write it.
    victim = tasks[0].id
    await pool.execute(
        "INSERT INTO taskqueue.task_events (task_id, event_type, status, attempt, worker_id)"
        " VALUES ($1, 'task_started', 'running', 2, 'rogue')",
        victim,
    )
    report = await audit(pool)
    assert {v.task_id for v in report.violations} == {victim}

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskqueue.cli",
        "--database-url",
        database_url,
        "audit",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 1, err.decode()
    assert f"task {victim}: task_started while succeeded" in out.decode()
    assert "1 violation(s) in 1 task(s)" in out.decode()

    db_now = await pool.fetchval("SELECT now()")
    fresh = await tq.enqueue("noop")
    report = await audit(pool, since=db_now)
    assert (report.tasks, report.violations) == (1, [])
    assert fresh.created_at >= db_now
