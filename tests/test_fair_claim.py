"""Fair claiming between tenants (claim_tasks.sql, claim_governed_tasks.sql):
tenants with due work in a queue take turns in every claim, so one tenant's
backlog does not delay another's next tasks; priorities still order a
tenant's own tasks, and no tenant with due work waits long. Driven through
the real claim statements."""

from __future__ import annotations

import asyncpg

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask


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
    # 30 tenants, each with a backlog, and claims of 10: in turn order by
    # each head's age, so all 30 are served within 3 claims.
    await tq.submit(
        [
            NewTask(type="noop", tenant=f"t{k}", name=f"t{k}-{i}")
            for i in range(5)
            for k in range(30)
        ]
    )
    served: set[str] = set()
    for _ in range(3):
        served |= {tenant for tenant, _ in await claim(pool, 10)}
    assert served == {f"t{k}" for k in range(30)}


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
