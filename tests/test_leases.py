"""Crash recovery and fencing, without sleeping: expired leases are made by
writing the rows (or by pinning the rescuer's clock), then one pass is run."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import asyncpg

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.worker.leases import LeaseKeeper, Rescuer
from tests.helpers import event_types


async def make_running(
    pool: asyncpg.Pool, task_id: uuid.UUID, *, worker: str, attempts: int, expired: bool
) -> None:
    """A row as a worker that then died would have left it."""
    await pool.execute(
        "UPDATE taskqueue.tasks SET status = 'running', attempts = $2, locked_by = $3,"
        " started_at = now() - interval '2 minutes',"
        " locked_until = now() + CASE WHEN $4 THEN interval '-1 minute'"
        " ELSE interval '1 minute' END WHERE id = $1",
        task_id,
        attempts,
        worker,
        expired,
    )


async def test_rescuer_requeues_expired_tasks_or_fails_those_out_of_retries(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    retryable, exhausted, alive = await tq.enqueue_many(
        [NewTask(type="noop", max_retries=3) for _ in range(3)]
    )
    await make_running(pool, retryable.id, worker="dead-1", attempts=1, expired=True)
    await make_running(pool, exhausted.id, worker="dead-2", attempts=4, expired=True)
    await make_running(pool, alive.id, worker="alive", attempts=1, expired=False)

    rescued = await Rescuer(pool, worker_id="rescuer", interval=60).run_once()

    assert dict(rescued) == {retryable.id: "queued", exhausted.id: "failed"}
    back = await tq.get(retryable.id)
    assert (back.status, back.locked_by, back.locked_until, back.attempts) == (
        "queued",
        None,
        None,
        1,
    )
    gone = await tq.get(exhausted.id)
    assert gone.status == "failed"
    assert gone.completed_at is not None
    assert gone.last_error == "lease expired: worker dead-2 stopped renewing it"
    assert (await tq.get(alive.id)).status == "running"
    events = await pool.fetch(
        "SELECT task_id, status, worker_id, detail FROM taskqueue.task_events"
        " WHERE event_type = 'task_lease_expired'"
    )
    assert {(e["task_id"], e["status"], e["worker_id"]) for e in events} == {
        (retryable.id, "queued", "dead-1"),
        (exhausted.id, "failed", "dead-2"),
    }
    assert {e["detail"]["rescued_by"] for e in events} == {"rescuer"}
    # A second pass finds nothing: rescue happens once.
    assert await Rescuer(pool, worker_id="rescuer", interval=60).run_once() == []


async def test_rescuer_judges_leases_by_the_time_it_is_given(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    task = await tq.enqueue("noop")
    (claimed,) = await store.claim_tasks(pool, ["default"], 1, "w", 30, types=["noop"])
    rescuer = Rescuer(pool, worker_id="rescuer", interval=60)
    db_now = await pool.fetchval("SELECT now()")
    assert await rescuer.run_once(now=db_now + timedelta(seconds=29)) == []
    assert await rescuer.run_once(now=db_now + timedelta(seconds=31)) == [(task.id, "queued")]
    assert await event_types(pool, claimed.id) == [
        "task_queued",
        "task_started",
        "task_lease_expired",
    ]


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
    await tq.enqueue_many([NewTask(type="noop", max_retries=1) for _ in range(4)])
    a, b, c, d = await store.claim_tasks(pool, ["default"], 4, "w", 30, types=["noop"])
    outcomes = [
        Outcome(task_id=a.id, attempt=1, kind=OutcomeKind.SUCCEEDED),
        Outcome(task_id=b.id, attempt=1, kind=OutcomeKind.ERROR, error="x", retry_delay=60),
        Outcome(task_id=c.id, attempt=1, kind=OutcomeKind.TIMEOUT, error="slow", retry_delay=60),
        Outcome(task_id=d.id, attempt=1, kind=OutcomeKind.RELEASED),
    ]
    assert await store.complete_tasks(pool, outcomes, "w") == {a.id, b.id, c.id, d.id}
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


async def test_lease_keeper_extends_held_leases_in_one_statement_and_spots_lost_ones(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    from taskqueue.worker.inflight import InFlight

    await tq.enqueue_many([NewTask(type="noop") for _ in range(3)])
    inflight = InFlight(concurrency=10, max_prefetch=0, lease_seconds=30)
    sent_at = time.monotonic()
    claimed = await store.claim_tasks(pool, ["default"], 3, "w", 1, types=["noop"])
    inflight.add(claimed, sent_at)
    held = {a.task.id: a for a in inflight.leased()}
    # One of them is taken away by the rescuer.
    db_now = await pool.fetchval("SELECT now()")
    lost_id = claimed[0].id
    await pool.execute(
        "UPDATE taskqueue.tasks SET locked_until = now() - interval '1 second' WHERE id = $1",
        lost_id,
    )
    await Rescuer(pool, worker_id="r", interval=60).run_once(now=db_now)
    keeper = LeaseKeeper(pool, inflight, worker_id="w", lease_seconds=30)
    renewing_at = time.monotonic()
    assert await keeper.run_once() == {lost_id}
    assert held[lost_id].stop_reason == "lease_lost"
    # The others' local deadlines moved to the renewal's send time + lease - margin.
    for task_id, attempt in held.items():
        if task_id != lost_id:
            assert attempt.deadline >= renewing_at + 30 - inflight.margin
    leases = await pool.fetch(
        "SELECT locked_until - now() AS left FROM taskqueue.tasks WHERE status = 'running'"
    )
    assert len(leases) == 2
    assert all(r["left"] > timedelta(seconds=25) for r in leases)
