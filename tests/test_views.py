"""taskqueue.views (tq.views): what the live surfaces read goes through the
TaskQueue and answers from the database, one statement each."""

from __future__ import annotations

import asyncpg

from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Status


async def test_the_views_read_what_the_database_holds(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    made = await tq.enqueue_many(
        [NewTask(type="noop", name="invoice-7", queue="mail") for _ in range(2)]
        + [NewTask(type="noop", name="other", queue="jobs")]
    )
    cancelled = await tq.cancel(made[0].id)
    await pool.execute(
        "UPDATE taskqueue.tasks SET status = 'failed', last_error = 'boom', completed_at = now()"
        " WHERE id = $1",
        made[2].id,
    )
    # Counted as complete_tasks.sql counts a failure (the row was changed by hand).
    await pool.execute("INSERT INTO taskqueue.queue_counts (queue, failed) VALUES ('jobs', 1)")
    views = tq.views

    states = await views.queue_states(failed=True)
    assert {q.name: (q.queued, q.failed) for q in states.queues} == {"mail": (1, 0), "jobs": (0, 1)}
    assert (await views.queue_states("mail", totals=True)).queues[0].cancelled == 1
    assert await views.cancelled() == 1
    assert await views.total() == 3
    found = await views.search("invoice", status=Status.QUEUED)
    assert [t.id for t in found] == [made[1].id]
    assert [g.error for g in await views.failures(10)] == ["boom"]

    now = await views.now()
    assert now.tzinfo is not None
    assert sum(m.succeeded for m in await views.throughput(now.replace(hour=0, minute=0))) == 0
    assert await views.workers() == await tq.workers() == []
    assert await views.applied_migrations()

    first = await views.events_after(0, 1000)
    assert {e.task_id for e in first} == {t.id for t in made}
    tail = await views.tail(first[0].id - 1)
    assert [e.id for e in await tail.poll()] == [e.id for e in first]
    assert await (await views.tail()).poll() == []
    (action,) = await views.actions_after(0)  # the cancel, in the operator log
    assert action.id == await views.last_action_id()
    assert await views.actions_after(action.id) == []
    assert cancelled.status == Status.CANCELLED
