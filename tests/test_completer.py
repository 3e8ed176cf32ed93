"""The completer's statement: batched, fenced outcomes of every kind, one
event each, and flushes that ride out a lost connection."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.worker.completer import Completer
from taskqueue.worker.leases import Rescuer
from tests.helpers import event_types


async def test_a_stale_workers_completion_changes_nothing_and_writes_no_event(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    task = await tq.enqueue("noop")
    (first,) = await store.claim_tasks(pool, ["default"], 1, "worker-a", 30, types=["noop"])
    # worker-a stalls; its lease runs out and the task goes to worker-b.
    db_now = await pool.fetchval("SELECT now()")
    await Rescuer(pool, worker_id="r", interval=60).run_once(now=db_now + timedelta(minutes=1))
    (second,) = await store.claim_tasks(pool, ["default"], 1, "worker-b", 30, types=["noop"])
    assert (first.id, first.attempt, second.attempt) == (task.id, 1, 2)

    stale = Outcome(task_id=task.id, attempt=1, kind=OutcomeKind.SUCCEEDED)
    assert await store.complete_tasks(pool, [stale], "worker-a") == set()
    # Even claiming to be worker-b with the old attempt number does not pass the fence.
    assert await store.complete_tasks(pool, [stale], "worker-b") == set()
    running = await tq.get(task.id)
    assert (running.status, running.locked_by, running.attempts) == ("running", "worker-b", 2)
    trail = ["task_queued", "task_started", "task_lease_expired", "task_started"]
    assert await event_types(pool, task.id) == trail

    current = Outcome(task_id=task.id, attempt=2, kind=OutcomeKind.SUCCEEDED, result={"ok": 1})
    assert await store.complete_tasks(pool, [current], "worker-b") == {task.id}
    assert (await tq.get(task.id)).result == {"ok": 1}
    assert await event_types(pool, task.id) == [*trail, "task_succeeded"]


async def test_one_flush_records_mixed_outcomes_in_one_statement(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop", max_retries=1) for _ in range(8)])
    claimed = await store.claim_tasks(pool, ["default"], 8, "w", 30, types=["noop"])
    a, b, c, d, e, f, g, h = claimed
    outcomes = [
        Outcome(task_id=a.id, attempt=1, kind=OutcomeKind.SUCCEEDED),
        Outcome(task_id=b.id, attempt=1, kind=OutcomeKind.ERROR, error="x", retry_delay=60),
        Outcome(task_id=c.id, attempt=1, kind=OutcomeKind.TIMEOUT, error="slow", retry_delay=60),
        Outcome(task_id=d.id, attempt=1, kind=OutcomeKind.RELEASED),
        Outcome(task_id=e.id, attempt=1, kind=OutcomeKind.PERMANENT, error="gone"),
        Outcome(task_id=f.id, attempt=1, kind=OutcomeKind.SNOOZED, retry_delay=90, reason="wait"),
        Outcome(
            task_id=g.id,
            attempt=1,
            kind=OutcomeKind.PERMANENT,
            error="bad payload",
            reason="invalid_payload",
        ),
        Outcome(task_id=h.id, attempt=1, kind=OutcomeKind.RELEASED, reason="lease_deadline"),
    ]
    assert await store.complete_tasks(pool, outcomes, "w") == {t.id for t in claimed}
    rows = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id, status, attempts, run_at - now() AS wait FROM taskqueue.tasks"
        )
    }
    assert rows[a.id]["status"] == "succeeded"
    assert rows[b.id]["status"] == "queued"
    assert rows[b.id]["wait"] > timedelta(seconds=59)
    assert rows[c.id]["status"] == "queued"
    assert (rows[d.id]["status"], rows[d.id]["attempts"]) == ("queued", 0)  # not charged
    assert (rows[e.id]["status"], rows[e.id]["attempts"]) == ("failed", 1)  # retries were left
    assert (rows[f.id]["status"], rows[f.id]["attempts"]) == ("queued", 0)  # not charged
    assert timedelta(seconds=89) < rows[f.id]["wait"] <= timedelta(seconds=90)
    assert (rows[h.id]["status"], rows[h.id]["attempts"]) == ("queued", 0)
    last = {
        r["task_id"]: (r["event_type"], r["detail"])
        for r in await pool.fetch(
            "SELECT DISTINCT ON (task_id) task_id, event_type, detail"
            " FROM taskqueue.task_events ORDER BY task_id, id DESC"
        )
    }
    assert last[a.id] == ("task_succeeded", None)
    assert last[b.id][0] == "task_retry_scheduled"
    assert last[b.id][1]["failure"] == "error"
    assert last[c.id][1]["failure"] == "timeout"
    assert last[d.id] == ("task_released", {"reason": "shutdown"})
    assert last[e.id] == ("task_failed", {"failure": "permanent"})
    assert last[f.id][0] == "task_snoozed"
    assert (last[f.id][1]["seconds"], last[f.id][1]["reason"]) == (90, "wait")
    assert last[g.id] == ("task_failed", {"failure": "invalid_payload"})
    assert last[h.id] == ("task_released", {"reason": "lease_deadline"})


async def test_outcomes_wait_out_a_lost_connection_and_none_is_dropped(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    from taskqueue import db

    await tq.enqueue_many([NewTask(type="noop") for _ in range(50)])
    claimed = await store.claim_tasks(pool, ["default"], 50, "w", 30, types=["noop"])
    own = await db.create_pool(database_url, min_size=1, max_size=2, application_name="doomed")
    recorded: list[Outcome] = []
    completer = Completer(own, "w", batch_size=20, interval=0, on_recorded=recorded.extend)
    try:
        for task in claimed[:25]:
            completer.submit(Outcome(task_id=task.id, attempt=1, kind=OutcomeKind.SUCCEEDED))
        await pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'doomed'"
        )
        for task in claimed[25:]:
            completer.submit(Outcome(task_id=task.id, attempt=1, kind=OutcomeKind.SUCCEEDED))
        completer.close()
        await completer.run()
    finally:
        await own.close()
    assert sorted(o.task_id for o in recorded) == sorted(t.id for t in claimed)
    assert completer.recorded == 50
    assert (
        await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE status = 'succeeded'") == 50
    )
