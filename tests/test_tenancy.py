"""TenantQueue: the Python handle scoped to one tenant, against real
PostgreSQL. It stamps, reads and changes its tenant's tasks only, and
refuses what only an operator may do."""

from __future__ import annotations

import asyncpg
import pytest

from taskqueue.client import TaskQueue
from taskqueue.errors import (
    InvalidArgument,
    InvalidTask,
    TaskNotFound,
    TenantForbidden,
    WorkflowNotFound,
)
from taskqueue.models import NewTask, TaskFilter
from taskqueue.tenancy import TenantQueue
from taskqueue.workflows import Workflow


async def test_it_stamps_its_tenant_and_refuses_another(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    acme = TenantQueue(tq, "acme")
    assert (await acme.enqueue("noop")).tenant == "acme"
    assert {t.tenant for t in await acme.enqueue_many([NewTask(type="noop")] * 2)} == {"acme"}
    with pytest.raises(TenantForbidden, match=r"tasks\[1\]\.tenant"):
        await acme.enqueue_many([NewTask(type="noop"), NewTask(type="noop", tenant="globex")])
    with pytest.raises(TenantForbidden):
        await acme.insert(tq.prepare([NewTask(type="noop", tenant="globex")]))
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 3
    with pytest.raises(InvalidArgument):
        TenantQueue(tq, "not a name")


async def test_it_reads_and_changes_only_its_own_tasks(tq: TaskQueue) -> None:
    acme, globex = TenantQueue(tq, "acme"), TenantQueue(tq, "globex")
    mine = await acme.enqueue("noop", queue="q")
    theirs = await globex.enqueue("noop", queue="q")
    nobodys = await tq.enqueue("noop", queue="q")
    for other in (theirs.id, nobodys.id):
        for read in (acme.get, acme.history, acme.cancel, acme.retry):
            with pytest.raises(TaskNotFound):
                await read(other)
    assert [t.id for t in await acme.list()] == [mine.id]
    with pytest.raises(TenantForbidden):
        await acme.list(tenant="globex")
    done = await acme.cancel_many(where=TaskFilter(queue="q"))
    assert (done.matched, done.changed) == (1, 1)
    assert (await tq.get(theirs.id)).status == "queued"
    assert (await acme.cancel_many([theirs.id, nobodys.id])).matched == 0
    with pytest.raises(TenantForbidden):
        await acme.cancel_many(where=TaskFilter(tenant="globex"))
    stats = await acme.stats()
    assert (stats.total_tasks, stats.cancelled_tasks) == (1, 1)
    assert (await tq.stats()).total_tasks == 3
    assert (await tq.stats(tenant="globex")).queued_tasks == 1
    assert (await acme.stats(tenant="acme")).total_tasks == 1
    with pytest.raises(TenantForbidden):
        await acme.stats(tenant="globex")
    # An idempotency key is the tenant's (0027_idempotency_per_tenant): the
    # same key in another tenant is another task, and each tenant's repeat
    # returns its own.
    theirs_keyed = await globex.enqueue("noop", idempotency_key="k")
    mine_keyed = await acme.enqueue("noop", idempotency_key="k")
    assert mine_keyed.id != theirs_keyed.id and mine_keyed.tenant == "acme"
    assert (await acme.enqueue("noop", idempotency_key="k")).id == mine_keyed.id
    assert (await globex.enqueue("noop", idempotency_key="k")).id == theirs_keyed.id
    batch = await acme.submit([NewTask(type="noop", idempotency_key="k")] * 2)
    assert [(r.task.id, r.created) for r in batch] == [(mine_keyed.id, False)] * 2
    assert (await tq.enqueue("noop", idempotency_key="k")).tenant is None  # no tenant: a third


async def test_its_bulk_retry_and_delete_touch_only_its_own_tasks(tq: TaskQueue) -> None:
    acme, globex = TenantQueue(tq, "acme"), TenantQueue(tq, "globex")
    tasks = {
        name: await queue.enqueue("noop", queue="q")
        for name, queue in (("mine", acme), ("theirs", globex), ("nobodys", tq))
    }
    ids = [t.id for t in tasks.values()]
    # All three cancelled (by the operator), so all three may be retried.
    assert (await tq.cancel_many(ids)).changed == 3
    # By ids: another tenant's and a tenantless task do not even match.
    assert (await acme.retry_many(ids)).matched == 1
    assert [(await tq.get(i)).status for i in ids] == ["queued", "cancelled", "cancelled"]
    assert (await tq.cancel_many([tasks["mine"].id])).changed == 1
    # By filter: the same.
    done = await acme.retry_many(where=TaskFilter(queue="q"))
    assert (done.matched, done.changed) == (1, 1)
    assert [(await tq.get(i)).status for i in ids] == ["queued", "cancelled", "cancelled"]
    assert (await tq.cancel_many([tasks["mine"].id])).changed == 1
    with pytest.raises(TenantForbidden):
        await acme.retry_many(where=TaskFilter(tenant="globex"))
    # Delete: by ids and by filter, only its own.
    assert (await acme.delete_many(ids)).changed == 1
    with pytest.raises(TaskNotFound):
        await tq.get(tasks["mine"].id)
    assert (await acme.delete_many(where=TaskFilter(queue="q"))).matched == 0
    with pytest.raises(TenantForbidden):
        await acme.delete_many(where=TaskFilter(tenant="globex"))
    assert [(await tq.get(i)).status for i in ids[1:]] == ["cancelled", "cancelled"]


async def test_its_workflows_are_its_own(tq: TaskQueue) -> None:
    acme, globex = TenantQueue(tq, "acme"), TenantQueue(tq, "globex")
    wf = Workflow("etl")
    wf.add("noop", {})
    mine = await acme.workflows.submit(wf)
    theirs = await globex.workflows.submit(wf)
    assert (await acme.get(mine.tasks[0].id)).tenant == "acme"
    assert [w.id for w in await acme.workflows.list()] == [mine.id]
    with pytest.raises(WorkflowNotFound):
        await acme.workflows.get(theirs.id)
    assert (await acme.workflows.get(mine.id)).id == mine.id
    foreign = Workflow("x")
    foreign.add("noop", {}, tenant="globex")
    with pytest.raises(TenantForbidden):
        await acme.workflows.submit(foreign)


async def test_operator_operations_are_refused(tq: TaskQueue) -> None:
    acme = TenantQueue(tq, "acme")
    for call in (
        lambda: acme.pause("default"),
        lambda: acme.queue("default"),
        lambda: acme.workers(),
        lambda: acme.actions(),
        lambda: acme.list_schedules(),
        lambda: acme.tenants.get("acme"),
        lambda: acme.tenants(),  # every tenant's use
    ):
        with pytest.raises(TenantForbidden):
            await call()
    await acme.close()  # closes nothing: the pool is tq's
    assert (await tq.enqueue("noop")).tenant is None


async def test_its_tasks_may_wait_only_for_its_own_tasks(tq: TaskQueue) -> None:
    acme = TenantQueue(tq, "acme")
    theirs = await tq.enqueue("noop", tenant="globex")
    nobodys = await tq.enqueue("noop")
    mine = await acme.enqueue("noop")
    for other in (theirs.id, nobodys.id):
        with pytest.raises(InvalidTask) as raised:  # as if it did not exist
            await acme.workflows.enqueue("noop", depends_on=[other])
        assert raised.value.field == "depends_on" and "no such task" in raised.value.message
    waits = await acme.workflows.enqueue("noop", depends_on=[mine.id])
    assert (waits.status, waits.tenant) == ("waiting", "acme")


async def test_a_workflow_of_several_tenants_is_none_of_theirs(tq: TaskQueue) -> None:
    # An operator may submit one; no tenant lists it (nor may read it), and
    # the operator's tenant filter leaves it out as well.
    acme = TenantQueue(tq, "acme")
    mixed = Workflow("mixed")
    mixed.add("noop", {}, tenant="acme")
    mixed.add("noop", {}, tenant="globex")
    made = await tq.workflows.submit(mixed)
    own = Workflow("own")
    own.add("noop", {})
    mine = await acme.workflows.submit(own)
    assert [w.id for w in await acme.workflows.list()] == [mine.id]
    assert [w.id for w in await tq.workflows.list(tenant="acme")] == [mine.id]
    assert [w.id for w in await tq.workflows.list(tenant="globex")] == []
    assert {w.id for w in await tq.workflows.list()} == {made.id, mine.id}
    with pytest.raises(WorkflowNotFound):
        await acme.workflows.get(made.id)
