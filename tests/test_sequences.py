"""Sequences (migration 0014_claim_keys): tasks with the same sequence_key in
a queue run one at a time in enqueue order, each waiting for the one before
it; a retrying task holds the sequence, a finally failed one releases it
(or holds it with sequence_on_failure "block"); keys and queues are
independent. Claimed through the real claim and completion statements."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from taskqueue.benchmark import store as bench_store
from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidTask
from taskqueue.models import NewTask, OutcomeKind
from tests.helpers import run_audit, status_of, wait_until, worker_process
from tests.test_workflows import claim, finish

HANDLERS = "taskqueue.benchmark.handlers"  # bench_keyed: runs ms, fails a first attempt


async def test_same_key_runs_one_at_a_time_in_enqueue_order(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    a = await tq.enqueue("noop", sequence_key="k")
    b = await tq.enqueue("noop", sequence_key="k")
    (c,) = [r.task for r in await tq.submit([NewTask(type="noop", sequence_key="k")])]
    other = await tq.enqueue("noop", sequence_key="other")
    assert (a.status, b.status, c.status, other.status) == (
        "queued",
        "waiting",
        "waiting",
        "queued",
    )
    assert sorted(await claim(pool)) == sorted([a.id, other.id])
    assert await claim(pool) == []  # b waits while a runs
    await finish(pool, a.id)
    assert await claim(pool) == [b.id]
    await finish(pool, b.id)
    assert await claim(pool) == [c.id]
    assert await run_audit(pool) == []


async def test_a_batch_chains_its_own_tasks_of_a_key_and_leaves_keyless_ones_free(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    done = await tq.submit(
        [
            NewTask(type="noop", sequence_key="k"),
            NewTask(type="noop"),
            NewTask(type="noop", sequence_key="k"),
            NewTask(type="noop", sequence_key="k", queue="elsewhere"),
        ]
    )
    first, free, second, elsewhere = (r.task for r in done)
    assert [first.status, free.status, second.status, elsewhere.status] == [
        "queued",
        "queued",
        "waiting",
        "queued",
    ]
    assert sorted(await claim(pool)) == sorted([first.id, free.id])
    await finish(pool, first.id)
    assert await claim(pool) == [second.id]


async def test_a_retrying_task_holds_its_sequence_and_a_failed_one_releases_it(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    a = await tq.enqueue("noop", sequence_key="k", max_retries=1)
    b = await tq.enqueue("noop", sequence_key="k")
    await claim(pool)
    await finish(pool, a.id, OutcomeKind.ERROR)  # retry scheduled (due now)
    assert await status_of(pool, b.id) == "waiting"
    assert await claim(pool) == [a.id]  # the retry, not b
    await finish(pool, a.id, OutcomeKind.ERROR)  # failed for good
    assert await status_of(pool, b.id) == "queued"
    assert await claim(pool) == [b.id]
    assert await run_audit(pool) == []


async def test_block_holds_the_sequence_until_the_failed_task_succeeds(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    a = await tq.enqueue("noop", sequence_key="k", sequence_on_failure="block", max_retries=0)
    b = await tq.enqueue("noop", sequence_key="k")
    await claim(pool)
    await finish(pool, a.id, OutcomeKind.ERROR)
    assert await status_of(pool, a.id) == "failed"
    assert await status_of(pool, b.id) == "waiting"
    # A task added behind a blocked failure waits too.
    c = await tq.enqueue("noop", sequence_key="k")
    assert c.status == "waiting"
    # The reconciler (safety net) leaves a held sequence alone.
    released = await pool.fetchrow("SELECT * FROM taskqueue.reconcile_waiting(100, 'test')")
    assert released is not None and released["released"] == 0
    await tq.retry(a.id)
    assert await claim(pool) == [a.id]
    await finish(pool, a.id)
    assert await claim(pool) == [b.id]
    await finish(pool, b.id)
    assert await claim(pool) == [c.id]
    assert await run_audit(pool) == []


async def test_a_key_is_its_tenants_and_another_tenants_failure_holds_nothing(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    # 0026_keys_per_tenant: the same key in two tenants is two sequences.
    a1 = await tq.enqueue(
        "noop", sequence_key="k", sequence_on_failure="block", max_retries=0, tenant="a"
    )
    b1 = await tq.enqueue("noop", sequence_key="k", tenant="b")
    a2 = await tq.enqueue("noop", sequence_key="k", tenant="a")
    b2 = await tq.enqueue("noop", sequence_key="k", tenant="b")
    assert (a1.status, b1.status, a2.status, b2.status) == (
        "queued",
        "queued",
        "waiting",
        "waiting",
    )
    assert sorted(await claim(pool)) == sorted([a1.id, b1.id])
    await finish(pool, a1.id, OutcomeKind.ERROR)  # a's blocking failure holds a's key only
    await finish(pool, b1.id)
    assert await claim(pool) == [b2.id]
    assert await status_of(pool, a2.id) == "waiting"
    assert await run_audit(pool) == []


async def test_a_repeated_idempotency_key_does_not_become_the_tail(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    a = await tq.enqueue("noop", sequence_key="k", idempotency_key="once")
    again = await tq.enqueue("noop", sequence_key="k", idempotency_key="once")
    assert again.id == a.id
    b = await tq.enqueue("noop", sequence_key="k")
    assert b.status == "waiting"  # behind a, not behind the task never inserted
    await claim(pool)
    await finish(pool, a.id)
    assert await claim(pool) == [b.id]


async def test_another_tenants_idempotency_key_neither_takes_nor_blocks_a_task(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    # 0027_idempotency_per_tenant, on the dependencies' statement (a task
    # with a sequence_key takes it): the same key in another tenant is a
    # task of its own, and the head of that tenant's sequence.
    a = await tq.enqueue("noop", sequence_key="k", idempotency_key="once", tenant="a")
    b = await tq.enqueue("noop", sequence_key="k", idempotency_key="once", tenant="b")
    assert b.id != a.id and (a.status, b.status) == ("queued", "queued")
    assert (await tq.enqueue("noop", sequence_key="k", idempotency_key="once", tenant="b")).id == (
        b.id
    )
    b2 = await tq.enqueue("noop", sequence_key="k", tenant="b")
    assert b2.status == "waiting"  # behind b
    assert sorted(await claim(pool)) == sorted([a.id, b.id])


async def test_a_task_after_a_finished_tail_is_queued_at_once(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    a = await tq.enqueue("noop", sequence_key="k")
    await claim(pool)
    await finish(pool, a.id)
    b = await tq.enqueue("noop", sequence_key="k")
    assert b.status == "queued"


async def test_cancelling_a_waiting_task_keeps_the_chain(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    a = await tq.enqueue("noop", sequence_key="k")
    b = await tq.enqueue("noop", sequence_key="k")
    c = await tq.enqueue("noop", sequence_key="k")
    await tq.cancel(b.id)
    assert await claim(pool) == [a.id]  # c now waits for a, b's predecessor
    assert await status_of(pool, c.id) == "waiting"
    await tq.cancel(c.id)  # the tail: a task added next follows a too
    d = await tq.enqueue("noop", sequence_key="k")
    assert d.status == "waiting"
    await finish(pool, a.id)
    assert await claim(pool) == [d.id]
    assert await run_audit(pool) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sequence_key": ""}, "sequence_key"),
        ({"sequence_key": "a\nb"}, "sequence_key"),
        ({"concurrency_key": 5}, "concurrency_key"),
        ({"sequence_on_failure": "block"}, "sequence_on_failure"),
        ({"sequence_key": "k", "sequence_on_failure": "stop"}, "sequence_on_failure"),
    ],
)
async def test_bad_keys_are_refused_naming_the_field(
    tq: TaskQueue, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidTask) as caught:
        await tq.submit([NewTask(type="noop", **fields)])  # type: ignore[arg-type]
    assert caught.value.field == field


async def test_worker_processes_keep_each_key_in_order_under_retries_and_a_kill(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    keys, length = 20, 5
    producer = TaskQueue(pool, registry=None)  # bench_keyed is the workers' type
    await producer.submit(
        [
            NewTask(
                type="bench_keyed",
                queue="seq",
                sequence_key=f"k{k}",
                max_retries=5,
                payload={"pos": pos, "ms": 5, "fail": int((k + pos) % 4 == 0)},
            )
            for pos in range(length)
            for k in range(keys)
        ]
    )
    env = {"queues": "seq", "handlers": HANDLERS, "lease_seconds": "1", "concurrency": "8"}
    log = tmp_path / "workers.log"

    async def ended(n: int) -> bool:
        return await bench_store.unfinished_tasks(pool) <= keys * length - n

    async with (
        worker_process(database_url, log, **env),
        worker_process(database_url, log, **env) as doomed,
    ):
        await wait_until(lambda: ended(keys * length // 3), timeout=60)
        doomed.kill()  # SIGKILL: its running tasks come back after their lease
        await doomed.wait()
        async with worker_process(database_url, log, **env):
            await wait_until(lambda: ended(keys * length), timeout=90)
    assert await bench_store.sequence_check(pool, "seq") == (0, 0, 0)  # overlaps, order, left
    # Every fourth task failed its first attempt (or lost it to the kill): retried.
    retried = await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE attempts > 1")
    assert retried >= keys * length // 4
    assert await run_audit(pool) == []
