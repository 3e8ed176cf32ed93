"""Dependencies and workflows against real PostgreSQL: a waiting task is
never claimed; the statement that finishes its last parent queues it (with
task_ready); failures cancel transitively or run 'run' children; siblings
completing concurrently release once; rescue, cancel, retry and expiry
settle dependents, and the children a cascade cancels end like any task;
the graph checks refuse bad graphs and insert nothing; real worker processes
killed with SIGKILL mid-graph leave nothing stranded and every order kept."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidGraph, InvalidTask, ParentResultsNotRequested
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.registry import Registry, TaskContext
from taskqueue.worker.expiry import ExpirySweep
from taskqueue.worker.leases import Rescuer
from taskqueue.workflows import Workflow, chain, group
from tests.helpers import (
    all_in_status,
    event_types,
    run_audit,
    running_worker,
    status_of,
    wait_until,
    worker_process,
)


async def claim(pool: asyncpg.Pool, worker: str = "w", n: int = 100) -> list[uuid.UUID]:
    tasks = await store.claim_tasks(pool, ["default"], n, worker, 30, types=["noop"])
    return [t.id for t in tasks]


async def finish(
    pool: asyncpg.Pool, task_id: uuid.UUID, kind: OutcomeKind = OutcomeKind.SUCCEEDED
) -> None:
    attempt = await pool.fetchval("SELECT attempts FROM taskqueue.tasks WHERE id = $1", task_id)
    worker = await pool.fetchval("SELECT locked_by FROM taskqueue.tasks WHERE id = $1", task_id)
    outcome = Outcome(task_id=task_id, attempt=attempt, kind=kind, error="boom", retry_delay=0)
    assert await store.complete_tasks(pool, [outcome], worker) == {task_id}


async def test_a_completion_releases_a_child_without_waiting_for_a_raise_of_its_lane(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    done = await tq.workflows.submit(chain(NewTask(type="noop"), NewTask(type="noop")))
    a, b = (t.id for t in done.tasks)
    assert await claim(pool) == [a]
    async with pool.acquire() as raiser:
        transaction = raiser.transaction()
        await transaction.start()
        # A worker's raise of the lane both tasks share, not yet committed.
        assert await store.advance_lanes(raiser, ["default"], ["noop"], grace=0.0, every=0.0)
        await asyncio.wait_for(finish(pool, a), timeout=5)
        await transaction.rollback()
    assert await status_of(pool, b) == "queued"
    assert await claim(pool) == [b]


async def test_a_chain_runs_in_order_and_each_step_is_queued_by_its_parents_completion(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    done = await tq.workflows.submit(chain(*(NewTask(type="noop") for _ in range(3))))
    a, b, c = (t.id for t in done.tasks)
    assert [t.status for t in done.tasks] == ["queued", "waiting", "waiting"]
    assert await claim(pool) == [a]  # waiting tasks are never claimed
    await finish(pool, a)
    assert await status_of(pool, b) == "queued"
    assert await event_types(pool, b) == ["task_queued", "task_ready"]
    assert await claim(pool) == [b]
    await finish(pool, b)
    assert await claim(pool) == [c]
    await finish(pool, c)
    assert (await tq.workflows.get(done.id)).status == "succeeded"
    assert await run_audit(pool) == []


async def test_a_failure_cancels_dependents_transitively_naming_the_parent(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    wf = Workflow("f")
    wf.add("noop", ref="a", max_retries=0)
    wf.add("noop", ref="b", after=["a"])
    wf.add("noop", ref="c", after=["b"])
    wf.add("noop", ref="always", after=["b"], on_parent_failure="run")
    done = await tq.workflows.submit(wf)
    ids = {t.ref: t.id for t in done.tasks}
    await claim(pool)
    await finish(pool, ids["a"], OutcomeKind.ERROR)  # no retries left: failed for good
    assert await status_of(pool, ids["b"]) == "cancelled"
    assert await status_of(pool, ids["c"]) == "cancelled"
    # 'run': its only parent b was cancelled, so it runs and sees b's outcome.
    assert await status_of(pool, ids["always"]) == "queued"
    detail = await pool.fetchval(
        "SELECT detail FROM taskqueue.task_events WHERE task_id = $1"
        " AND event_type = 'task_cancelled'",
        ids["c"],
    )
    assert detail["parent"] == str(ids["b"]) and detail["reason"] == "parent_failed"
    (claimed,) = await store.claim_tasks(
        pool, ["default"], 10, "w", 30, types=["noop"], parent_result_types=["noop"]
    )
    assert claimed.id == ids["always"]
    assert claimed.parent_results is not None and '"cancelled"' in claimed.parent_results
    assert (await tq.workflows.get(done.id)).status in ("running", "failed")
    assert await run_audit(pool) == []


async def test_the_claim_reads_parents_only_for_the_types_that_ask(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    parent = await tq.enqueue("noop")
    await claim(pool)
    await finish(pool, parent.id)
    for _ in range(2):
        await tq.workflows.enqueue("noop", depends_on=[parent.id])
    (plain,) = await store.claim_tasks(pool, ["default"], 1, "w", 30, types=["noop"])
    assert plain.parent_results is None  # noop's handler does not read them
    (asked,) = await store.claim_tasks(
        pool, ["default"], 1, "w", 30, types=["noop"], parent_result_types=["noop"]
    )
    assert asked.parent_results is not None and '"succeeded"' in asked.parent_results


def parents_registry(seen: dict[str, object]) -> Registry:
    registry = Registry()

    @registry.task("make", max_retries=0)
    async def make(payload: int, ctx: TaskContext) -> int:
        return payload * 10

    @registry.task("merge", parent_results=True)
    async def merge(payload: None, ctx: TaskContext) -> int:
        seen["merge"] = ctx.parent_results
        return sum(p["result"] for p in ctx.parent_results.values())

    @registry.task("sum", max_retries=3)
    async def total(payload: None, ctx: TaskContext) -> int:
        return sum(p["result"] for p in ctx.parent_results.values())  # did not opt in

    return registry


async def test_ctx_parent_results_for_opted_in_types_and_a_clear_failure_for_others(
    pool: asyncpg.Pool, database_url: str
) -> None:
    seen: dict[str, object] = {}
    registry = parents_registry(seen)
    tq = TaskQueue(pool, registry)
    wf = Workflow("parents")
    wf.add("make", 1, ref="one")
    wf.add("make", 2, ref="two")
    wf.add("merge", ref="merge", after=["one", "two"])
    wf.add("sum", ref="sum", after=["one", "two"])
    done = await tq.workflows.submit(wf)
    ids = {t.ref: t.id for t in done.tasks}
    async with running_worker(database_url, registry):
        await wait_until(lambda: all_in_status(pool, [ids["merge"]], "succeeded"))
        await wait_until(lambda: all_in_status(pool, [ids["sum"]], "failed"))
    merged = seen["merge"]
    assert isinstance(merged, dict) and set(merged) == {"one", "two"}
    assert merged["two"] == {
        "id": str(ids["two"]),
        "ref": "two",
        "status": "succeeded",
        "result": 20,
        "error": None,
    }
    assert (await tq.get(ids["merge"])).result == 30
    # Not {} as if it had no parents: it fails at once (no retry can help),
    # saying how to opt in.
    failed = await tq.get(ids["sum"])
    assert failed.attempts == 1
    assert failed.last_error is not None and "parent_results=True" in failed.last_error
    assert "ParentResultsNotRequested" in failed.last_error


def context(**parents: str | bool) -> TaskContext:
    return TaskContext(
        task_id=uuid.uuid4(),
        type="t",
        queue="q",
        attempt=1,
        max_retries=0,
        worker_id="w",
        **parents,  # type: ignore[arg-type]
    )


def test_a_context_built_with_parent_results_reads_them_and_one_without_refuses() -> None:
    given = context(parent_results='[{"id": "x", "ref": "a", "status": "succeeded"}]')
    assert given.parent_results["a"]["status"] == "succeeded"
    assert context(reads_parents=True).parent_results == {}  # asked; it has no parents
    with pytest.raises(ParentResultsNotRequested, match=r"task\('t', parent_results=True\)"):
        _ = context().parent_results


async def test_a_parent_that_will_retry_is_not_finished(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    parent = await tq.enqueue("noop", max_retries=1)
    child = await tq.workflows.enqueue("noop", depends_on=[parent.id])
    assert child.status == "waiting"
    await claim(pool)
    await finish(pool, parent.id, OutcomeKind.ERROR)  # retry scheduled
    assert await status_of(pool, child.id) == "waiting"
    await claim(pool)
    await finish(pool, parent.id)
    assert await status_of(pool, child.id) == "queued"
    assert await run_audit(pool) == []


async def test_depends_on_a_finished_parent_counts_it_done_or_failed(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    ok = await tq.enqueue("noop")
    bad = await tq.enqueue("noop", max_retries=0)
    await claim(pool)
    await finish(pool, ok.id)
    await finish(pool, bad.id, OutcomeKind.PERMANENT)
    assert (await tq.workflows.enqueue("noop", depends_on=[ok.id])).status == "queued"
    assert (await tq.workflows.enqueue("noop", depends_on=[bad.id])).status == "cancelled"
    run = await tq.workflows.enqueue("noop", depends_on=[ok.id, bad.id], on_parent_failure="run")
    assert run.status == "queued"
    with pytest.raises(InvalidTask) as caught:
        await tq.workflows.enqueue("noop", depends_on=[uuid.uuid4()])
    assert caught.value.field == "depends_on"
    assert await run_audit(pool) == []


async def test_concurrent_sibling_completions_release_the_child_exactly_once(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    members = [NewTask(type="noop") for _ in range(40)]
    done = await tq.workflows.submit(group(members, then=NewTask(type="noop")))
    then = next(t.id for t in done.tasks if t.ref == "then")
    parents = await claim(pool, "w", 100)
    assert len(parents) == 40
    # Forty completions, each in its own statement and connection, at once.
    await asyncio.gather(*(finish(pool, p) for p in parents))
    assert await status_of(pool, then) == "queued"
    assert await event_types(pool, then) == ["task_queued", "task_ready"]
    assert await pool.fetchval("SELECT waiting_on FROM taskqueue.tasks WHERE id = $1", then) == 0
    assert await run_audit(pool) == []


def two_layers(width: int) -> Workflow:
    """``width`` parents, then ``width`` children each after 3 of them."""
    wf = Workflow("two layers")
    for i in range(width):
        wf.add("noop", ref=f"p{i}")
    for i in range(width):
        wf.add("noop", ref=f"c{i}", after=[f"p{(i + k * 7) % width}" for k in range(3)])
    return wf


async def test_batches_that_share_children_settle_them_at_once_without_deadlock(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    # Each child's parents fall in different batches, recorded at once by
    # different workers: both statements lock the shared children (in id
    # order, so neither waits on the other forever), and each child is
    # queued by whichever statement counts its last parent, exactly once.
    done = await tq.workflows.submit(two_layers(60))
    halves = [await claim(pool, "w1", 30), await claim(pool, "w2", 30)]

    async def record(half: list[uuid.UUID], worker: str) -> set[uuid.UUID]:
        outcomes = [Outcome(task_id=p, attempt=1, kind=OutcomeKind.SUCCEEDED) for p in half]
        return await store.complete_tasks(pool, outcomes, worker)

    recorded = await asyncio.gather(
        *(record(h, w) for h, w in zip(halves, ("w1", "w2"), strict=True))
    )
    assert recorded == [set(h) for h in halves]
    children = [t.id for t in done.tasks if t.ref.startswith("c")]
    assert await all_in_status(pool, children, "queued")
    ready = await pool.fetchval(
        "SELECT count(*) FROM taskqueue.task_events"
        " WHERE task_id = ANY ($1::uuid[]) AND event_type = 'task_ready'",
        children,
    )
    assert ready == len(children)
    assert await run_audit(pool) == []


async def test_settling_reads_each_child_by_its_id_with_statistics_from_an_empty_table(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    # With statistics from before the graph (tasks vacuumed while empty, as on
    # a fresh install), the planner could read every waiting task through
    # the index of waiting tasks for each child it settled: quadratic in the
    # graph's width (a 10,000-task graph drained at 800 tasks/s).
    await pool.execute("VACUUM ANALYZE taskqueue.tasks")
    done = await tq.workflows.submit(two_layers(300))
    parents = await claim(pool, "w", 500)
    assert len(parents) == 300
    outcomes = [Outcome(task_id=p, attempt=1, kind=OutcomeKind.SUCCEEDED) for p in parents]
    async with pool.acquire() as conn, conn.transaction():
        assert await store.complete_tasks(conn, outcomes, "w") == set(parents)
        read = await conn.fetchval(
            "SELECT pg_stat_get_xact_tuples_returned('taskqueue.tasks_waiting_idx'::regclass)"
        )
    assert read == 0
    children = [t.id for t in done.tasks if t.ref.startswith("c")]
    assert await all_in_status(pool, children, "queued")


async def test_rescue_of_a_dead_parent_settles_its_children(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    parent = await tq.enqueue("noop", max_retries=0)
    child = await tq.workflows.enqueue("noop", depends_on=[parent.id])
    keeps = await tq.workflows.enqueue("noop", depends_on=[parent.id], on_parent_failure="run")
    await claim(pool)
    db_now = await pool.fetchval("SELECT now()")
    await Rescuer(pool, worker_id="r", interval=60).run_once(now=db_now + timedelta(minutes=5))
    assert await status_of(pool, parent.id) == "failed"
    assert await status_of(pool, child.id) == "cancelled"
    assert await status_of(pool, keeps.id) == "queued"
    assert await run_audit(pool) == []


async def test_an_expired_parent_counts_as_cancelled_for_its_dependents(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    parent = await tq.enqueue("noop", queue="nobody", ttl_seconds=60)
    doomed = await tq.workflows.enqueue("noop", depends_on=[parent.id])
    runs = await tq.workflows.enqueue("noop", depends_on=[parent.id], on_parent_failure="run")
    in_an_hour = await pool.fetchval("SELECT now() + interval '1 hour'")
    assert await ExpirySweep(pool, worker_id="sweeper").run_once(now=in_an_hour) == 1
    assert await status_of(pool, parent.id) == "expired"
    assert await status_of(pool, doomed.id) == "cancelled"
    assert await status_of(pool, runs.id) == "queued"
    detail = await pool.fetchval(
        "SELECT detail FROM taskqueue.task_events WHERE task_id = $1"
        " AND event_type = 'task_cancelled'",
        doomed.id,
    )
    assert detail["parent"] == str(parent.id) and detail["reason"] == "parent_failed"
    # Depending on it afterwards: cancelled at once, or run with 'run'.
    assert (await tq.workflows.enqueue("noop", depends_on=[parent.id])).status == "cancelled"
    late = await tq.workflows.enqueue("noop", depends_on=[parent.id], on_parent_failure="run")
    assert late.status == "queued"
    assert await run_audit(pool) == []


async def test_children_a_failure_cancels_tell_their_waiters_and_queue_their_callbacks(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    hook = {"url": "https://h.example/", "events": ["cancelled"]}
    wf = Workflow("hooks")
    wf.add("noop", ref="a", max_retries=0)
    wf.add("noop", ref="b", after=["a"], callback=hook, ttl_seconds=3600)
    wf.add("noop", ref="c", after=["b"])
    done = await tq.workflows.submit(wf)
    ids = {t.ref: t.id for t in done.tasks}
    row = await pool.fetchrow("SELECT * FROM taskqueue.tasks WHERE id = $1", ids["b"])
    assert row is not None and row["callback"] is not None and row["expires_at"] is not None
    told: set[str] = set()

    def hear(*args: object) -> None:
        told.update(str(args[3]).split(","))

    async def heard() -> bool:
        return {str(i) for i in ids.values()} <= told

    async with pool.acquire() as listener:
        await listener.add_listener(store.DONE_CHANNEL, hear)
        try:
            await claim(pool)
            await finish(pool, ids["a"], OutcomeKind.ERROR)
            await wait_until(heard, timeout=10)
        finally:
            await listener.remove_listener(store.DONE_CHANNEL, hear)
    assert await status_of(pool, ids["c"]) == "cancelled"
    (delivery,) = await pool.fetch(
        "SELECT payload FROM taskqueue.tasks WHERE type = 'taskqueue.callback'"
    )
    body = delivery["payload"]["body"]
    assert body["id"] == str(ids["b"]) and body["status"] == "cancelled"
    assert body["workflow_id"] == str(done.id)
    assert await run_audit(pool) == []


async def test_cancelling_a_waiting_task_cascades_and_retrying_the_parent_restores_the_wait(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    done = await tq.workflows.submit(chain(*(NewTask(type="noop") for _ in range(3))))
    a, b, c = (t.id for t in done.tasks)
    await tq.cancel(b)
    assert await status_of(pool, c) == "cancelled"
    # Bulk retry of the cancelled ones: they wait again for a, which is unfinished.
    result = await tq.retry_many([b, c])
    assert result.changed == 2
    assert await status_of(pool, b) == "waiting"
    assert await status_of(pool, c) == "waiting"
    await claim(pool)
    await finish(pool, a)
    assert await status_of(pool, b) == "queued"
    # Bulk cancel of a waiting task cascades too.
    await tq.cancel_many([c])
    assert await status_of(pool, c) == "cancelled"
    assert await run_audit(pool) == []


async def test_a_retried_parent_is_waited_for_again_by_run_children(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    p1 = await tq.enqueue("noop", max_retries=0)
    p2 = await tq.enqueue("noop")
    child = await tq.workflows.enqueue("noop", depends_on=[p1.id, p2.id], on_parent_failure="run")
    await claim(pool)
    await finish(pool, p1.id, OutcomeKind.PERMANENT)
    assert await pool.fetchval("SELECT waiting_on FROM taskqueue.tasks WHERE id=$1", child.id) == 1
    await tq.retry(p1.id)
    assert await pool.fetchval("SELECT waiting_on FROM taskqueue.tasks WHERE id=$1", child.id) == 2
    await finish(pool, p2.id)
    await claim(pool)
    await finish(pool, p1.id)
    assert await status_of(pool, child.id) == "queued"
    assert await run_audit(pool) == []


async def test_bad_graphs_are_refused_naming_the_refs_and_nothing_is_inserted(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    cycle = Workflow()
    cycle.add("noop", ref="a", after=["c"])
    cycle.add("noop", ref="b", after=["a"])
    cycle.add("noop", ref="c", after=["b"])
    unknown = Workflow()
    unknown.add("noop", ref="a", after=["nope"])
    twice = Workflow()
    twice.add("noop", ref="a")
    twice.add("noop", ref="a")
    # Dependencies never cross tenants, an operator's graph's neither.
    mixed = Workflow()
    mixed.add("noop", ref="a", tenant="acme")
    mixed.add("noop", ref="b", tenant="acme", after=["a"])
    mixed.add("noop", ref="c", tenant="globex", after=["a"])
    mixed.add("noop", ref="d", after=["b"])
    for wf, refs in (
        (cycle, {"a", "b", "c"}),
        (unknown, {"nope"}),
        (twice, {"a"}),
        (mixed, {"c", "d"}),
    ):
        with pytest.raises(InvalidGraph) as caught:
            await tq.workflows.submit(wf)
        assert set(caught.value.refs) == refs
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 0
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.workflows") == 0


async def test_an_operator_may_not_make_a_task_wait_for_another_tenants(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    acme = await tq.enqueue("noop", tenant="acme")
    none = await tq.enqueue("noop")
    for tenant, parent in (("globex", acme), (None, acme), ("acme", none)):
        with pytest.raises(InvalidTask) as raised:
            await tq.workflows.enqueue("noop", depends_on=[parent.id], tenant=tenant)
        assert raised.value.field == "depends_on"
        assert raised.value.message == f"tasks of another tenant: {parent.id}"
    batch = [NewTask(type="noop", tenant="acme"), NewTask(type="noop", tenant="globex")]
    with pytest.raises(InvalidTask) as raised:
        await tq.workflows.enqueue_after(batch, [[acme.id], [acme.id]])
    assert raised.value.field == "tasks[1].depends_on"
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks") == 2
    waits = await tq.workflows.enqueue("noop", depends_on=[acme.id], tenant="acme")
    assert waits.status == "waiting" and waits.tenant == "acme"


async def test_kill_9_of_workers_while_a_graph_drains_strands_nothing_and_keeps_order(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    wf = Workflow("crash")
    width, depth = 20, 5
    for layer in range(depth):
        for i in range(width):
            after = [f"{layer - 1}.{(i + k * 7) % width}" for k in range(3)] if layer else []
            wf.add("sleep", {"seconds": 0.05}, ref=f"{layer}.{i}", after=after, max_retries=10)
    await tq.workflows.submit(wf)
    total = width * depth
    fast = {"lease_seconds": "1.5", "concurrency": "8", "heartbeat_seconds": "0.5"}

    async def succeeded() -> int:
        return int(
            await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE status = 'succeeded'")
        )

    async with worker_process(database_url, tmp_path / "steady.log", **fast):
        for kill in range(3):
            async with worker_process(database_url, tmp_path / f"doomed{kill}.log", **fast) as p:
                goal = min(total - 1, (kill + 1) * total // 4)

                async def progressed(goal: int = goal) -> bool:
                    return await succeeded() >= goal

                await wait_until(progressed, timeout=60)
                p.send_signal(signal.SIGKILL)
                await p.wait()

        async def all_done() -> bool:
            return await succeeded() == total

        await wait_until(all_done, timeout=120)
    # Nothing left waiting; every child started only after each parent succeeded.
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE status = 'waiting'") == 0
    out_of_order = await pool.fetchval(
        """
        SELECT count(*)
        FROM taskqueue.task_dependencies d
        WHERE (SELECT min(at) FROM taskqueue.task_events
               WHERE task_id = d.child_id AND event_type = 'task_started')
            < (SELECT max(at) FROM taskqueue.task_events
               WHERE task_id = d.parent_id AND event_type = 'task_succeeded')
        """
    )
    assert out_of_order == 0
    assert await run_audit(pool) == []
