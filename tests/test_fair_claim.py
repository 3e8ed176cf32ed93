"""Fair claiming between tenants (claim_tasks.sql, claim_governed_tasks.sql):
tenants with due work in a queue take turns in every claim, and each claim
starts its turns at a place drawn at random, so one tenant's backlog does
not delay another's next tasks even when workers claim one task at a time;
priorities still order a tenant's own tasks, and no tenant with due work
waits long. A tenant's rate limit on starts holds across concurrent
claimers and queues, without holding back other tenants. Driven through the
real claim statements, and once through a real worker."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask
from taskqueue.registry import Registry, TaskContext
from taskqueue.worker.process import Worker
from tests.helpers import all_in_status, running_worker, status_of, wait_until


async def claim(pool: asyncpg.Pool, n: int, *, governed: bool = False) -> list[tuple[str, str]]:
    """(tenant, name) of what one claim took, in claim order."""
    tasks = await store.claim_tasks(
        pool, ["default"], n, "w", 30, types=["noop"], governed=governed
    )
    rows = {
        r["id"]: (r["tenant"] or "", r["name"])
        for r in await pool.fetch(
            "SELECT id, tenant, name FROM taskqueue.tasks WHERE id = ANY($1::uuid[])",
            [t.id for t in tasks],
        )
    }
    return [rows[t.id] for t in tasks]


async def test_a_flood_does_not_delay_another_tenants_next_tasks(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.submit([NewTask(type="noop", tenant="a", name=f"a{i}") for i in range(1600)])
    await tq.submit([NewTask(type="noop", tenant="b", name=f"b{i}") for i in range(20)])
    first = await claim(pool, 20)
    # Turns: a, b, a, b, ...: half each, the oldest of each.
    assert sorted(first) == sorted(
        [("a", f"a{i}") for i in range(10)] + [("b", f"b{i}") for i in range(10)]
    )
    second = await claim(pool, 20)
    assert sorted(n for t, n in second if t == "b") == sorted(f"b{i}" for i in range(10, 20))


async def test_a_real_worker_runs_another_tenants_tasks_before_a_floods_backlog(
    pool: asyncpg.Pool, database_url: str
) -> None:
    registry = Registry()

    @registry.task("slow")
    async def slow(payload: object, ctx: TaskContext) -> None:
        await asyncio.sleep(0.002)

    tq = TaskQueue(pool, registry)
    await tq.enqueue_many([NewTask(type="slow", tenant="a") for _ in range(2000)])
    theirs = await tq.enqueue_many([NewTask(type="slow", tenant="b") for _ in range(20)])

    async def bs_done() -> bool:
        return await all_in_status(pool, [t.id for t in theirs], "succeeded")

    # Its slots free one or two at a time, so most claims take one task.
    async with running_worker(database_url, registry, concurrency=2):
        await wait_until(bs_done, timeout=60)
        a_done = await pool.fetchval(
            "SELECT count(*) FROM taskqueue.tasks WHERE tenant = 'a' AND status <> 'queued'"
        )
    # Oldest first, all 2,000 of a's would run first. Taking turns, each
    # claim serves b with probability at least one half, so b's 20 are done
    # after about 40 starts; 400 of a's would take a run of bad draws far
    # beyond any chance (fewer than 20 heads in 420 fair coin flips).
    assert a_done < 400, a_done


async def test_priorities_order_a_tenants_own_tasks(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    await tq.submit(
        [
            NewTask(type="noop", tenant="a", name="a-low", priority=0),
            NewTask(type="noop", tenant="a", name="a-high", priority=5),
            NewTask(type="noop", tenant="b", name="b-low", priority=0),
        ]
    )
    # Turns by priority within the tenant: a's first turn is its high one.
    assert await claim(pool, 2) == [("a", "a-high"), ("b", "b-low")]
    assert await claim(pool, 2) == [("a", "a-low")]


async def test_every_tenant_with_due_work_is_served_within_a_few_claims(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    # 30 tenants, each with a backlog, and claims of 10: each claim serves
    # ten tenants in a row from a random place, so each tenant is left out
    # of a claim with probability 2/3, and of 40 claims with (2/3)^40 < 1e-7.
    await tq.submit(
        [
            NewTask(type="noop", tenant=f"t{k}", name=f"t{k}-{i}")
            for i in range(50)
            for k in range(30)
        ]
    )
    served: set[str] = set()
    claims = 0
    while len(served) < 30 and claims < 40:
        taken = await claim(pool, 10)
        assert len({tenant for tenant, _ in taken}) == 10  # ten tenants, one turn each
        served |= {tenant for tenant, _ in taken}
        claims += 1
    assert served == {f"t{k}" for k in range(30)}


async def claim_until(
    pool: asyncpg.Pool, done: int, tenant: str, limit: int, **kw: Any
) -> list[tuple[str, str]]:
    """Claims of one task until ``done`` tasks of ``tenant`` were taken
    (at most ``limit`` claims); what they took, in order."""
    taken: list[tuple[str, str]] = []
    claims = 0
    while sum(t == tenant for t, _ in taken) < done and claims < limit:
        taken += await claim(pool, 1, **kw)
        claims += 1
    return taken


async def test_claims_of_one_task_serve_tenants_in_turn(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    # A worker whose slots free one at a time claims one task at a time:
    # the flood's older tasks must not all come first. Each claim serves b
    # with probability 1/2: its 20 take 40 claims on average, and more than
    # 200 with a probability below 1e-25.
    await tq.submit([NewTask(type="noop", tenant="a", name=f"a{i}") for i in range(1600)])
    await tq.submit([NewTask(type="noop", tenant="b", name=f"b{i}") for i in range(20)])
    taken = await claim_until(pool, 20, "b", 200)
    assert [name for tenant, name in taken if tenant == "b"] == [f"b{i}" for i in range(20)]
    # a's own tasks in their order, and a served too meanwhile.
    mine = [name for tenant, name in taken if tenant == "a"]
    assert mine == [f"a{i}" for i in range(len(mine))] and mine


async def test_a_tenants_higher_priority_does_not_hold_back_another_tenant(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.submit([NewTask(type="noop", tenant="a", priority=9) for _ in range(300)])
    await tq.submit([NewTask(type="noop", tenant="b", name=f"b{i}") for i in range(5)])
    taken = await claim_until(pool, 5, "b", 100)
    assert [name for tenant, name in taken if tenant == "b"] == [f"b{i}" for i in range(5)]


async def test_no_pattern_of_claims_keeps_a_tenant_at_the_back(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    # Claims of one, alternating between two queues that both hold tenants
    # a and b: a place drawn per claim cannot fall in step with the pattern.
    for queue in ("default", "other"):
        await tq.submit([NewTask(type="noop", queue=queue, tenant="a") for _ in range(300)])
        await tq.submit(
            [NewTask(type="noop", queue=queue, tenant="b", name=f"b{i}") for i in range(10)]
        )
    taken: list[uuid.UUID] = []
    for _ in range(100):
        for queue in ("default", "other"):
            got = await store.claim_tasks(pool, [queue], 1, "w", 30, types=["noop"])
            if queue == "default":
                taken += [t.id for t in got]
        b_taken = await pool.fetchval(
            "SELECT count(*) FROM taskqueue.tasks WHERE id = ANY($1::uuid[]) AND tenant = 'b'",
            taken,
        )
        if b_taken == 10:
            break
    assert b_taken == 10


async def test_tasks_of_no_tenant_are_one_tenant_among_the_others(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.submit([NewTask(type="noop", name=f"x{i}") for i in range(50)])
    await tq.submit([NewTask(type="noop", tenant="b", name="b0")])
    assert sorted(await claim(pool, 2)) == [("", "x0"), ("b", "b0")]


async def test_a_governed_queue_shares_its_allowance_in_turns(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.set_limits("default", concurrency=4)
    await tq.submit([NewTask(type="noop", tenant="a", name=f"a{i}") for i in range(100)])
    await tq.submit([NewTask(type="noop", tenant="b", name=f"b{i}") for i in range(2)])
    taken = await claim(pool, 20, governed=True)
    assert sorted(taken) == [("a", "a0"), ("a", "a1"), ("b", "b0"), ("b", "b1")]


async def test_a_governed_queue_serves_tenants_in_turn_one_task_at_a_time(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.set_limits("default", concurrency=1000)
    await tq.submit([NewTask(type="noop", tenant="a", name=f"a{i}") for i in range(400)])
    await tq.submit([NewTask(type="noop", tenant="b", name=f"b{i}") for i in range(10)])
    taken = await claim_until(pool, 10, "b", 150, governed=True)
    assert [name for tenant, name in taken if tenant == "b"] == [f"b{i}" for i in range(10)]


async def started_of(pool: asyncpg.Pool, tenant: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM taskqueue.task_events e JOIN taskqueue.tasks t"
            " ON t.id = e.task_id WHERE e.event_type = 'task_started' AND t.tenant = $1",
            tenant,
        )
    )


async def claim_all(pool: asyncpg.Pool, queues: list[str], claimers: int = 4) -> list[uuid.UUID]:
    """Claim with ``claimers`` concurrent workers (governed, as a worker does
    once it sees a limited tenant) until none gets anything."""

    connected = asyncio.Barrier(claimers)  # every claimer's connection open: they overlap

    async def claimer(worker_id: str) -> list[uuid.UUID]:
        got: list[uuid.UUID] = []
        async with pool.acquire() as conn:
            await connected.wait()
            while batch := await store.claim_tasks(
                conn, queues, 7, worker_id, 30, types=["noop"], governed=True
            ):
                got.extend(t.id for t in batch)
        return got

    results = await asyncio.gather(*(claimer(f"w{n}") for n in range(claimers)))
    return [task_id for result in results for task_id in result]


async def test_a_rate_limited_tenant_starts_at_most_its_limit_across_concurrent_claimers(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.tenants.set_limits("a", rate=(5, 3600))
    await tq.submit([NewTask(type="noop", tenant="a") for _ in range(60)])
    await tq.submit([NewTask(type="noop", tenant="b") for _ in range(60)])
    await tq.submit([NewTask(type="noop") for _ in range(20)])
    # The plain claim leaves the limited tenant to the governed one, whatever
    # the worker believes; the worker is told to switch.
    plain = await store.claim_tasks(pool, ["default"], 100, "w", 30, types=["noop"])
    assert plain and all(
        r["tenant"] != "a"
        for r in await pool.fetch(
            "SELECT tenant FROM taskqueue.tasks WHERE id = ANY($1::uuid[])", [t.id for t in plain]
        )
    )
    assert await store.queues_with_settings(pool, ["default", "other"]) == {"default"}
    claimed = await claim_all(pool, ["default"])
    assert len(claimed) == len(set(claimed))
    # The limit, exactly, across four claimers; the others not held back.
    assert await started_of(pool, "a") == 5
    assert await started_of(pool, "b") == 60
    left = await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE status = 'queued'")
    assert left == 55
    usage = await tq.tenants.get("a")
    assert (usage.recent_starts, usage.unfinished, usage.max_queued) == (5, None, None)


async def test_a_claim_that_waited_for_the_tenants_row_counts_the_starts_before_it(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.tenants.set_limits("a", rate=(5, 3600))
    await tq.submit([NewTask(type="noop", tenant="a") for _ in range(20)])
    async with pool.acquire() as first, pool.acquire() as second:
        pid = second.get_server_pid()
        async with first.transaction():
            taken = await store.claim_tasks(
                first, ["default"], 3, "w1", 30, types=["noop"], governed=True
            )
            assert len(taken) == 3
            # The second claim began before the first committed: it waits for
            # the tenant's row, then reads it as the first left it.
            later = asyncio.ensure_future(
                store.claim_tasks(second, ["default"], 10, "w2", 30, types=["noop"], governed=True)
            )

            async def waiting() -> bool:
                return bool(
                    await pool.fetchval(
                        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                        pid,
                    )
                )

            await wait_until(waiting)
        assert len(await later) == 2
    assert await started_of(pool, "a") == 5


async def test_the_limit_spans_queues_and_the_window_rolls_on(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.tenants.set_limits("a", rate=(3, 60))
    await tq.submit([NewTask(type="noop", tenant="a", queue=q) for q in ("q1", "q2") * 10])
    await tq.set_limits("q1", concurrency=100)  # a limited queue's lock comes first
    assert len(await claim_all(pool, ["q1", "q2"])) == 3
    # The window's entries, a period older (time passed to SQL, not slept):
    # the next claims may start the limit again.
    await pool.execute(
        "UPDATE taskqueue.tenant_rates SET rate_window_at ="
        " ARRAY(SELECT w - interval '61 seconds' FROM unnest(rate_window_at) AS w)"
    )
    assert (await tq.tenants.get("a")).recent_starts == 0
    assert len(await claim_all(pool, ["q1", "q2"])) == 3
    assert await started_of(pool, "a") == 6


async def test_null_removes_the_limit_and_the_plain_claim_takes_the_tenant_again(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.tenants.set_limits("a", rate=(1, 3600))
    await tq.submit([NewTask(type="noop", tenant="a") for _ in range(10)])
    assert len(await claim_all(pool, ["default"])) == 1
    cleared = await tq.tenants.set_limits("a", rate=None)
    assert (cleared.rate_limit, cleared.recent_starts) == (None, None)
    assert await store.queues_with_settings(pool, ["default"]) == set()
    assert len(await store.claim_tasks(pool, ["default"], 100, "w", 30, types=["noop"])) == 9


async def test_a_rated_tenants_first_task_in_a_queue_starts_without_waiting_for_a_poll(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    # The worker learns which of its queues hold a rated tenant's lane once a
    # poll interval (30 s here) or when told; the task below opens a new lane
    # (0020_rated_lane_notice announces it), and the plain claim skips it.
    await tq.tenants.set_limits("a", rate=(100, 60))
    async with running_worker(database_url, poll_interval=30.0) as worker:
        await wait_until(lambda: _claimed_once(worker))
        task = await tq.enqueue("noop", tenant="a")

        async def succeeded() -> bool:
            return await status_of(pool, task.id) == "succeeded"

        await wait_until(succeeded, timeout=5.0)
    # A lane of no tenant, or of a tenant without a rate, announces nothing.
    async with pool.acquire() as conn:
        heard: list[str] = []

        def hear(*args: object) -> None:
            heard.append(str(args[3]))

        await conn.add_listener("taskqueue_control", hear)
        try:
            await tq.enqueue("noop", tenant="b", queue="other")
            await tq.enqueue("noop", queue="third")
            await tq.enqueue("noop", tenant="a", queue="fourth")
            # Notices arrive in commit order: once the last one is in, all are.
            await wait_until(lambda: _heard(heard))
        finally:
            await conn.remove_listener("taskqueue_control", hear)
        assert heard == ['{"tenant_settings" : "a"}']


async def _claimed_once(worker: Worker) -> bool:
    return worker.dispatcher is not None and worker.dispatcher.claims > 0


async def _heard(heard: list[str]) -> bool:
    return bool(heard)
