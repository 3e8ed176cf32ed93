"""The dependency reconciler (a safety net): it settles waiting tasks whose
parents have all finished, with events naming it, and finds nothing in a
sound run."""

from __future__ import annotations

import asyncpg

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.worker.dependencies import DependencyReconciler
from taskqueue.workflows import chain
from tests.helpers import status_of
from tests.test_workflows import claim, finish


async def test_a_sound_run_leaves_the_reconciler_nothing_to_do(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    done = await tq.workflows.submit(chain(NewTask(type="noop"), NewTask(type="noop")))
    await claim(pool)
    await finish(pool, done.tasks[0].id)
    assert await DependencyReconciler(pool, worker_id="rec").run_once() == (0, 0)


async def test_the_reconciler_settles_a_waiting_task_whose_parents_all_finished(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    parent = await tq.enqueue("noop")
    child = await tq.workflows.enqueue("noop", depends_on=[parent.id])
    await claim(pool)
    await finish(pool, parent.id)
    # Simulate a missed settlement: the child waits again with its parent done.
    await pool.execute(
        "UPDATE taskqueue.tasks SET status = 'waiting', waiting_on = 1 WHERE id = $1", child.id
    )
    reconciler = DependencyReconciler(pool, worker_id="rec", batch=1)
    assert await reconciler.run_once() == (1, 0)
    assert reconciler.readings()["released"] == 1
    assert await status_of(pool, child.id) == "queued"
    detail = await pool.fetchval(
        "SELECT detail FROM taskqueue.task_events WHERE task_id = $1 ORDER BY id DESC LIMIT 1",
        child.id,
    )
    assert detail["by"] == "reconciler"


async def test_the_reconciler_cancels_a_stranded_task_whose_parent_failed_and_cascades(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    done = await tq.workflows.submit(
        chain(NewTask(type="noop", max_retries=0), NewTask(type="noop"), NewTask(type="noop"))
    )
    a, b, c = (t.id for t in done.tasks)
    await claim(pool)
    # A failure recorded without settling (as a missed settlement would leave it).
    await pool.execute(
        "UPDATE taskqueue.tasks SET status = 'failed', locked_by = NULL, locked_until = NULL,"
        " completed_at = now() WHERE id = $1",
        a,
    )
    assert await DependencyReconciler(pool, worker_id="rec").run_once() == (0, 1)
    assert await status_of(pool, b) == "cancelled"
    assert await status_of(pool, c) == "cancelled"  # settled in turn, same call
