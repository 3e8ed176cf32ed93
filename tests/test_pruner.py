"""The pruner (taskqueue/worker/pruner.py): finished tasks go once past
their retention, by state and by queue, each with a task_deleted event and
the rest of its history kept; unfinished tasks are never touched; pruners
running at once never delete a row twice. Time is passed in, never slept."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.config import Retention
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.worker.pruner import Pruner
from tests.helpers import run_audit

DAY = timedelta(days=1)
FOLDABLE = timedelta(minutes=1, seconds=1)  # counter rows this old fold into one
DEFAULTS = Retention(succeeded=DAY, failed=14 * DAY, cancelled=7 * DAY, events=30 * DAY)


async def finish(
    tq: TaskQueue, pool: asyncpg.Pool, n: int, kind: OutcomeKind, *, queue: str = "default"
) -> list[uuid.UUID]:
    """``n`` tasks of ``queue`` run once and ended as ``kind``, the way a worker records it."""
    await tq.enqueue_many([NewTask(type="noop", queue=queue) for _ in range(n)])
    claimed = await store.claim_tasks(pool, [queue], n, "w", 30, types=["noop"])
    outcomes = [Outcome(task_id=t.id, attempt=1, kind=kind, error="boom") for t in claimed]
    await store.complete_tasks(pool, outcomes, "w")
    return [t.id for t in claimed]


async def cancelled(tq: TaskQueue, n: int, *, queue: str = "default") -> list[uuid.UUID]:
    made = await tq.enqueue_many([NewTask(type="noop", queue=queue) for _ in range(n)])
    for task in made:
        await tq.cancel(task.id)
    return [t.id for t in made]


async def present(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE id = ANY($1)", ids))


async def db_now(pool: asyncpg.Pool) -> datetime:
    value: datetime = await pool.fetchval("SELECT now()")
    return value


def pruner(pool: asyncpg.Pool, worker_id: str = "pruner-1", **kwargs: object) -> Pruner:
    return Pruner(pool, worker_id=worker_id, retention=DEFAULTS, **kwargs)  # type: ignore[arg-type]


async def test_finished_tasks_go_by_state_with_their_history_kept(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    succeeded = await finish(tq, pool, 3, OutcomeKind.SUCCEEDED)
    failed = await finish(tq, pool, 2, OutcomeKind.PERMANENT)
    gone_cancelled = await cancelled(tq, 2)
    queued = [t.id for t in await tq.enqueue_many([NewTask(type="noop") for _ in range(2)])]
    scheduled = (await tq.enqueue("noop", delay=3600)).id
    running = [t.id for t in await store.claim_tasks(pool, ["default"], 1, "w", 30, types=["noop"])]
    queued = [q for q in queued if q not in running]
    live = [*queued, scheduled, *running]
    before = await pool.fetchval("SELECT count(*) FROM taskqueue.task_events")
    now = await db_now(pool)
    prune = pruner(pool)

    assert await prune.run_once(now=now + timedelta(hours=23)) == 0
    assert await prune.run_once(now=now + 2 * DAY) == 3
    assert (await present(pool, succeeded), await present(pool, failed)) == (0, 2)
    assert await prune.run_once(now=now + 8 * DAY) == 2
    assert await present(pool, gone_cancelled) == 0
    assert await prune.run_once(now=now + 15 * DAY) == 2
    assert await present(pool, failed) == 0
    # Queued, scheduled and running tasks are never pruned, however old.
    assert await prune.run_once(now=now + 400 * DAY) == 0
    assert await present(pool, live) == len(live)

    deleted = await pool.fetch(
        "SELECT task_id, worker_id, detail->>'reason' AS reason FROM taskqueue.task_events"
        " WHERE event_type = 'task_deleted'"
    )
    gone = set(succeeded + failed + gone_cancelled)
    assert {r["task_id"] for r in deleted} == gone and len(deleted) == len(gone)
    assert {(r["worker_id"], r["reason"]) for r in deleted} == {("pruner-1", "retention")}
    # Every earlier event stays: history outlives its task.
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.task_events") == before + len(gone)
    for task_id in succeeded:
        assert (await tq.history(task_id))[-1].event_type == "task_deleted"
    assert await run_audit(pool) == []
    assert prune.readings()["pruned"] == 7


async def test_a_queue_keeps_its_own_retention(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    await tq.queues.set_retention("short", succeeded="1h", failed="2h")
    await tq.queues.set_retention("long", succeeded="3d")
    short_ok = await finish(tq, pool, 2, OutcomeKind.SUCCEEDED, queue="short")
    short_failed = await finish(tq, pool, 1, OutcomeKind.PERMANENT, queue="short")
    long_ok = await finish(tq, pool, 2, OutcomeKind.SUCCEEDED, queue="long")
    plain_ok = await finish(tq, pool, 2, OutcomeKind.SUCCEEDED)
    now = await db_now(pool)
    prune = pruner(pool)

    await prune.run_once(now=now + timedelta(minutes=90))
    assert [await present(pool, ids) for ids in (short_ok, short_failed, long_ok, plain_ok)] == [
        0,
        1,
        2,
        2,
    ]
    await prune.run_once(now=now + timedelta(hours=3))
    assert await present(pool, short_failed) == 0
    await prune.run_once(now=now + 2 * DAY)
    assert (await present(pool, long_ok), await present(pool, plain_ok)) == (2, 0)
    # Each retention in use has its own walk: the short one passing the long
    # queue's tasks does not leave them to a sweep.
    await prune.run_once(now=now + 4 * DAY)
    assert await present(pool, long_ok) == 0
    walks = await pool.fetch("SELECT walk FROM taskqueue.prune_marks ORDER BY walk")
    assert len(walks) == 3
    assert await run_audit(pool) == []


async def test_a_task_that_finished_long_after_it_was_made_goes_at_the_next_sweep(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    early = await finish(tq, pool, 1, OutcomeKind.SUCCEEDED)
    late = (await tq.enqueue("noop")).id  # made now, finished "later" (by hand, below)
    now = await db_now(pool)
    prune = pruner(pool)
    await prune.run_once(now=now + 2 * DAY)
    assert await present(pool, early) == 0
    # The walk has passed `late` (still queued); it succeeds a day later.
    (claimed,) = await store.claim_tasks(pool, ["default"], 1, "w", 30, types=["noop"])
    assert claimed.id == late
    await store.complete_tasks(
        pool, [Outcome(task_id=late, attempt=1, kind=OutcomeKind.SUCCEEDED)], "w"
    )
    await pool.execute(
        "UPDATE taskqueue.tasks SET completed_at = $2 WHERE id = $1", late, now + 2 * DAY
    )
    await prune.run_once(now=now + 3 * DAY + timedelta(hours=1))
    await prune.run_once(now=now + 3 * DAY + timedelta(hours=1))
    assert await present(pool, [late]) == 0
    assert await run_audit(pool) == []


async def test_batches_go_on_while_full_and_two_pruners_never_share_a_row(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    ok = await finish(tq, pool, 1200, OutcomeKind.SUCCEEDED)
    failed = await finish(tq, pool, 300, OutcomeKind.PERMANENT)
    gone_cancelled = await cancelled(tq, 50)
    now = await db_now(pool) + 30 * DAY
    first, second = pruner(pool, "pruner-1", batch=50), pruner(pool, "pruner-2", batch=50)
    counts = await asyncio.gather(first.run_once(now=now), second.run_once(now=now))
    everything = ok + failed + gone_cancelled
    # One pass each was enough: each went on while its batches came back full.
    assert sum(counts) == len(everything) and await present(pool, everything) == 0
    assert first.readings()["batches"] > 1
    doubled = await pool.fetchval(
        "SELECT count(*) FROM (SELECT task_id FROM taskqueue.task_events"
        " WHERE event_type = 'task_deleted' GROUP BY task_id HAVING count(*) > 1) d"
    )
    assert doubled == 0
    assert await run_audit(pool) == []


async def test_pruning_waits_on_no_claim_and_skips_rows_another_holds(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    done = await finish(tq, pool, 2, OutcomeKind.SUCCEEDED)
    now = await db_now(pool) + 2 * DAY
    async with pool.acquire() as holder:
        transaction = holder.transaction()
        await transaction.start()
        try:
            await holder.execute("SELECT 1 FROM taskqueue.tasks WHERE id = $1 FOR UPDATE", done[0])
            assert await asyncio.wait_for(pruner(pool).run_once(now=now), 10) == 1
        finally:
            await transaction.rollback()
    # The walk went past the row it skipped; the next sweep finds it.
    assert await pruner(pool).run_once(now=now) == 0
    later = now + DAY + timedelta(minutes=1)
    assert sum([await pruner(pool).run_once(now=later) for _ in range(2)]) == 1


async def finished_lately(pool: asyncpg.Pool) -> dict[str, int]:
    states = await store.queue_states(pool, totals=True)
    return {q.name: q.finished_last_minute for q in states.queues}


async def test_folding_keeps_every_count(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    for _ in range(3):
        await finish(tq, pool, 2, OutcomeKind.SUCCEEDED, queue="a")
        await finish(tq, pool, 1, OutcomeKind.PERMANENT, queue="b")
    await cancelled(tq, 2, queue="a")
    before = (await store.queue_states(pool, totals=True)).stats()
    rows = "SELECT count(*) FROM taskqueue.queue_counts"
    assert await pool.fetchval(rows) == 8  # one per finishing statement and queue
    # The last minute's rows fold into one per queue and second, so what
    # finished lately is still told; older ones into one per queue.
    seconds = await pool.fetchval(
        "SELECT count(DISTINCT (queue, date_trunc('second', at))) FROM taskqueue.queue_counts"
    )
    lately = await finished_lately(pool)
    assert sum(lately.values()) == 11
    await pruner(pool).run_once(now=await db_now(pool))
    assert await pool.fetchval(rows) == seconds
    assert await finished_lately(pool) == lately
    await pruner(pool).run_once(now=await db_now(pool) + FOLDABLE)
    assert await pool.fetchval(rows) == 2
    assert (await store.queue_states(pool, totals=True)).stats() == before
    # Nothing left to fold.
    assert await store.fold_queue_counts(pool, await db_now(pool) + FOLDABLE) == 0
    # Pruned tasks stay counted: the counts are of what finished.
    await pruner(pool).run_once(now=await db_now(pool) + 30 * DAY)
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0
    assert (await store.queue_states(pool, totals=True)).stats() == before
    assert (before.total_tasks, before.succeeded_tasks, before.failed_tasks) == (11, 6, 3)


@pytest.mark.parametrize("folders", [2, 4])
async def test_folders_running_at_once_lose_nothing(
    tq: TaskQueue, pool: asyncpg.Pool, folders: int
) -> None:
    for _ in range(10):
        await finish(tq, pool, 1, OutcomeKind.SUCCEEDED)
    later = await db_now(pool) + FOLDABLE
    await asyncio.gather(*(store.fold_queue_counts(pool, later) for _ in range(folders)))
    (state,) = (await store.queue_states(pool, totals=True)).queues
    assert state.succeeded == 10
