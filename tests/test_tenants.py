"""Tenant quotas against real PostgreSQL: max_queued refuses what goes
beyond it on every insert path (a batch whole), the counter follows tasks
as they end, are cancelled, retried or cancelled by a failed parent, null
removes the limit, and tenantless tasks leave no counter work behind; a
rate limit on starts is set, shown and removed, and holds across three real
worker processes without holding back another tenant of the same queue;
over REST, 429 with Retry-After and GET/PATCH /api/tenants/{name}."""

from __future__ import annotations

import asyncio
import math
import signal
import tempfile
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from taskqueue.client import TaskQueue
from taskqueue.errors import InvalidArgument, QuotaExceeded
from taskqueue.models import NewTask, RateLimit
from taskqueue.store.bulk_copy import COPY_MIN_ROWS
from taskqueue.workflows import Workflow
from tests.api_helpers import api_client
from tests.helpers import all_in_status, run_audit, running_worker, wait_until, worker_process

OPERATOR = "operator-token-0123456789"
ACME = "acme-token-0123456789abc"
TOKENS = f"{OPERATOR}:read+write:ops,{ACME}:read+write:acme-bot:acme"


async def tasks_of(pool: asyncpg.Pool, tenant: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM taskqueue.tasks WHERE tenant = $1", tenant)
    )


async def test_max_queued_refuses_beyond_it_and_a_batch_whole(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    usage = await tq.tenants.set_limits("acme", max_queued=3)
    assert (usage.max_queued, usage.unfinished) == (3, 0)
    await tq.enqueue("noop", tenant="acme")
    await tq.enqueue_many([NewTask(type="noop", tenant="acme")] * 2)
    with pytest.raises(QuotaExceeded, match="acme"):
        await tq.enqueue("noop", tenant="acme")
    await tq.enqueue("noop", tenant="globex")  # other tenants and none are not held back
    await tq.enqueue("noop")
    assert await tasks_of(pool, "acme") == 3
    (first,) = await tq.list(tenant="acme", limit=1)
    await tq.cancel(first.id)
    with pytest.raises(QuotaExceeded):  # one place free, two asked: nothing inserted
        await tq.enqueue_many([NewTask(type="noop", tenant="acme")] * 2)
    with pytest.raises(QuotaExceeded):  # by COPY too
        await tq.enqueue_many([NewTask(type="noop", tenant="acme")] * COPY_MIN_ROWS)
    waiting_on = (await tq.list(tenant="acme", status="queued", limit=1))[0].id
    with pytest.raises(QuotaExceeded):  # and with dependencies
        await tq.workflows.enqueue_after(
            [NewTask(type="noop", tenant="acme")] * 2, [[waiting_on], [waiting_on]]
        )
    assert await tasks_of(pool, "acme") == 3
    assert (await tq.tenants.get("acme")).unfinished == 2
    await tq.enqueue("noop", tenant="acme")
    removed = await tq.tenants.set_limits("acme", max_queued=None)
    assert (removed.max_queued, removed.unfinished) == (None, 3)
    await tq.enqueue_many([NewTask(type="noop", tenant="acme")] * COPY_MIN_ROWS)
    assert (await tq.tenants.get("acme")).unfinished == 3 + COPY_MIN_ROWS


async def test_the_counter_follows_tasks_as_they_end_retry_and_are_cancelled_by_a_parent(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    # Tasks from before the quota are counted once, when it is set.
    await tq.enqueue("noop", tenant="acme")
    assert (await tq.tenants.set_limits("acme", max_queued=1000)).unfinished == 1
    wf = Workflow("chain")
    parent = wf.add("fail", {}, max_retries=0, tenant="acme")
    wf.add("noop", {}, after=[parent], tenant="acme")  # cancelled when its parent fails
    await tq.workflows.submit(wf)
    await tq.enqueue_many([NewTask(type="noop", tenant="acme")] * 3)
    await tq.enqueue("fail", {}, max_retries=0, tenant="acme")
    assert (await tq.tenants.get("acme")).unfinished == 7

    async def all_ended() -> bool:
        return not await pool.fetchval(
            "SELECT count(*) FROM taskqueue.tasks"
            " WHERE tenant = 'acme' AND status IN ('waiting', 'queued', 'running')"
        )

    async with running_worker(database_url):
        await wait_until(all_ended)
    assert (await tq.tenants.get("acme")).unfinished == 0
    failed = await tq.list(tenant="acme", status="failed")
    await tq.retry(failed[0].id)
    assert (await tq.tenants.get("acme")).unfinished == 1
    await tq.cancel(failed[0].id)
    assert (await tq.tenants.get("acme")).unfinished == 0
    assert await run_audit(pool) == []


async def test_tenantless_tasks_and_tenants_without_a_quota_cost_no_counter_rows(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    await tq.enqueue_many([NewTask(type="noop")] * 5 + [NewTask(type="noop", tenant="free")] * 5)

    async def drained() -> bool:
        return (await tq.stats()).succeeded_tasks == 10

    async with running_worker(database_url):
        await wait_until(drained)
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tenant_counts") == 0
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tenants") == 0
    free = await tq.tenants.get("free")
    assert (free.max_queued, free.unfinished) == (None, None)  # never counted


async def test_a_quota_is_a_number_or_null(tq: TaskQueue) -> None:
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(InvalidArgument) as raised:
            await tq.tenants.set_limits("acme", max_queued=bad)  # type: ignore[arg-type]
        assert raised.value.field == "max_queued"
    with pytest.raises(InvalidArgument):
        await tq.tenants.get("a b")


async def test_over_rest_a_tenant_over_its_quota_gets_429_with_retry_after(
    database_url: str, pool: asyncpg.Pool
) -> None:
    operator, acme = {"Authorization": f"Bearer {OPERATOR}"}, {"Authorization": f"Bearer {ACME}"}
    async with api_client(database_url, api_tokens=TOKENS) as client:
        set_to = await client.patch("/api/tenants/acme", json={"max_queued": 2}, headers=operator)
        assert set_to.status_code == 200, set_to.text
        assert set_to.json() == {
            "name": "acme",
            "max_queued": 2,
            "unfinished": 0,
            "rate_limit": None,
            "recent_starts": None,
        }
        one = await client.post("/api/tasks", json={"type": "noop"}, headers=acme)
        assert one.status_code == 201
        batch = await client.post(
            "/api/tasks/batch", json={"tasks": [{"type": "noop"}] * 2}, headers=acme
        )
        assert batch.status_code == 429 and batch.headers["retry-after"] == "1"
        assert batch.json()["error"] == "quota_exceeded"
        assert await tasks_of(pool, "acme") == 1
        two = await client.post("/api/tasks", json={"type": "noop"}, headers=acme)
        assert two.status_code == 201
        three = await client.post("/api/tasks", json={"type": "noop"}, headers=acme)
        assert three.status_code == 429 and int(three.headers["retry-after"]) >= 1
        flow = await client.post(
            "/api/workflows", json={"tasks": [{"ref": "a", "type": "noop"}]}, headers=acme
        )
        assert flow.status_code == 429
        # Another producer in the same grouped insert is not held back.
        other = await client.post("/api/tasks", json={"type": "noop"}, headers=operator)
        assert other.status_code == 201
        seen = await client.get("/api/tenants/acme", headers=acme)
        assert seen.json()["unfinished"] == 2
        cleared = await client.patch(
            "/api/tenants/acme", json={"max_queued": None}, headers=operator
        )
        assert cleared.json()["max_queued"] is None
        assert (
            await client.post("/api/tasks", json={"type": "noop"}, headers=acme)
        ).status_code == 201
        for body in ({}, {"max_queued": -1}, {"max_queued": "x"}, {"other": 1}):
            bad = await client.patch("/api/tenants/acme", json=body, headers=operator)
            assert bad.status_code == 422, body
        assert (
            await client.patch("/api/tenants/a%20b", json={"max_queued": 1}, headers=operator)
        ).status_code == 422


async def test_the_pruner_folds_the_deltas_of_a_tenant_that_stopped_enqueueing(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    from taskqueue.queues import DEFAULT_RETENTION
    from taskqueue.worker.pruner import Pruner

    await tq.tenants.set_limits("acme", max_queued=10)
    tasks = await tq.enqueue_many([NewTask(type="noop", tenant="acme")] * 3)
    for task in tasks:
        await tq.cancel(task.id)  # one delta row each
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tenant_counts") == 3
    pruner = Pruner(pool, worker_id="pruner", retention=DEFAULT_RETENTION)
    await pruner.run_once()
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.tenant_counts") == 0
    assert await pool.fetchval("SELECT unfinished FROM taskqueue.tenants") == 0
    assert (await tq.tenants.get("acme")).unfinished == 0
    assert pruner.readings()["folded"] >= 3


async def test_a_rate_limit_is_set_shown_kept_and_removed(tq: TaskQueue) -> None:
    usage = await tq.tenants.set_limits("acme", rate=(10, 60))
    assert usage.rate_limit == RateLimit(limit=10, period_seconds=60)
    # A rate limit alone starts no counting of unfinished tasks.
    assert (usage.recent_starts, usage.max_queued, usage.unfinished) == (0, None, None)
    both = await tq.tenants.set_limits("acme", max_queued=5)  # the rate left out is kept
    assert (both.max_queued, both.rate_limit) == (5, RateLimit(limit=10, period_seconds=60))
    changed = await tq.tenants.set_limits(
        "acme", rate=RateLimit(limit=3, period_seconds=0.5), max_queued=None
    )
    assert (changed.max_queued, changed.rate_limit) == (
        None,
        RateLimit(limit=3, period_seconds=0.5),
    )
    cleared = await tq.tenants.set_limits("acme", rate=None)
    assert (cleared.rate_limit, cleared.recent_starts) == (None, None)
    # Listed while counted: a quota removed keeps the counter going.
    assert [(t.name, t.max_queued, t.rate_limit) for t in await tq.tenants()] == [
        ("acme", None, None)
    ]
    logged = [(a.action, a.scope) for a in await tq.actions(limit=2)]
    assert logged == [
        ("tenant_limits", {"tenant": "acme", "rate_limit": None}),
        ("tenant_limits", {"tenant": "acme", "rate_limit": {"limit": 3, "period_seconds": 0.5}}),
    ]
    for rate, field in (
        ((0, 1.0), "rate_limit.limit"),
        ((1.5, 1.0), "rate_limit.limit"),
        ((5, 0), "rate_limit.period_seconds"),
        ((5, math.nan), "rate_limit.period_seconds"),
        ((5, 8 * 86400), "rate_limit.period_seconds"),
        (5, "rate_limit"),
    ):
        with pytest.raises(InvalidArgument) as raised:
            await tq.tenants.set_limits("acme", rate=rate)  # type: ignore[arg-type]
        assert raised.value.field == field, rate
    with pytest.raises(InvalidArgument) as raised:
        await tq.tenants.set_limits("acme")
    assert raised.value.field == "body"
    assert (await tq.tenants.get("acme")).rate_limit is None  # nothing bad was stored


async def test_over_rest_a_rate_limit_round_trips_and_bad_values_name_their_field(
    database_url: str,
) -> None:
    operator, acme = {"Authorization": f"Bearer {OPERATOR}"}, {"Authorization": f"Bearer {ACME}"}
    async with api_client(database_url, api_tokens=TOKENS) as client:
        rate = {"limit": 10, "period_seconds": 60}
        set_to = await client.patch(
            "/api/tenants/acme", json={"rate_limit": rate}, headers=operator
        )
        assert set_to.status_code == 200, set_to.text
        assert set_to.json() == {
            "name": "acme",
            "max_queued": None,
            "unfinished": None,
            "rate_limit": {"limit": 10, "period_seconds": 60.0},
            "recent_starts": 0,
        }
        own = await client.get("/api/tenants/acme", headers=acme)  # a tenant reads its own
        assert own.json()["rate_limit"] == {"limit": 10, "period_seconds": 60.0}
        refused = await client.patch("/api/tenants/acme", json={"rate_limit": None}, headers=acme)
        assert refused.status_code == 403  # and never changes it
        both = await client.patch(
            "/api/tenants/acme", json={"max_queued": 7, "rate_limit": None}, headers=operator
        )
        assert (both.json()["max_queued"], both.json()["rate_limit"]) == (7, None)
        seen = await client.get("/api/tenants/acme", headers=operator)
        assert (seen.json()["rate_limit"], seen.json()["recent_starts"]) == (None, None)
        for body, field in (
            ({"rate_limit": {"limit": 0, "period_seconds": 1}}, "rate_limit.limit"),
            ({"rate_limit": {"limit": 1, "period_seconds": 0}}, "rate_limit.period_seconds"),
            (
                {"rate_limit": {"limit": 1, "period_seconds": 8 * 86400}},
                "rate_limit.period_seconds",
            ),
            ({"rate_limit": {"limit": "1", "period_seconds": 1}}, "rate_limit.limit"),
            ({"rate_limit": {"limit": 1}}, "rate_limit.period_seconds"),
            ({"rate_limit": 5}, "rate_limit"),
            ({}, "body"),
        ):
            bad = await client.patch("/api/tenants/acme", json=body, headers=operator)
            assert bad.status_code == 422, body
            assert bad.json()["field"] == field, (body, bad.json())
        kept = await client.get("/api/tenants/acme", headers=operator)
        assert (kept.json()["max_queued"], kept.json()["rate_limit"]) == (7, None)
        # The list: every tenant with a quota or a rate limit, an operator's.
        await client.patch("/api/tenants/zeta", json={"rate_limit": rate}, headers=operator)
        listed = await client.get("/api/tenants", headers=operator)
        assert [(t["name"], t["max_queued"], t["rate_limit"]) for t in listed.json()] == [
            ("acme", 7, None),
            ("zeta", None, {"limit": 10, "period_seconds": 60.0}),
        ]
        page = await client.get("/api/tenants?limit=1", headers=operator)
        assert [t["name"] for t in page.json()] == ["acme"] and "offset=1" in page.headers["link"]
        assert (await client.get("/api/tenants", headers=acme)).status_code == 403


async def test_a_rate_limit_holds_across_three_worker_processes(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    async with AsyncExitStack() as stack:
        procs = [
            await stack.enter_async_context(worker_process(database_url, log, concurrency="10"))
            for _ in range(3)
        ]
        # Set while the workers run: they learn it from the NOTIFY (or their
        # next look), and until then their plain claim leaves the tenant alone.
        await tq.tenants.set_limits("metered", rate=(4, 1.0))
        metered = await tq.enqueue_many([NewTask(type="noop", tenant="metered")] * 14)
        free = await tq.enqueue_many([NewTask(type="noop", tenant="free")] * 150)
        ids = [t.id for t in metered + free]
        await wait_until(lambda: all_in_status(pool, ids, "succeeded"), timeout=60)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert await asyncio.wait_for(proc.wait(), 30) == 0, log.read_text()

    async def starts(tenant: str) -> list[tuple[datetime, str]]:
        rows = await pool.fetch(
            "SELECT e.at, e.worker_id FROM taskqueue.task_events e"
            " JOIN taskqueue.tasks t ON t.id = e.task_id"
            " WHERE e.event_type = 'task_started' AND t.tenant = $1 ORDER BY e.at",
            tenant,
        )
        return [(r["at"], r["worker_id"]) for r in rows]

    # From the database's own times (each start's claim began at its at):
    # never more than 4 within any rolling second, whichever worker claimed.
    limited = [at for at, _ in await starts("metered")]
    busiest = max(
        sum(1 for s in limited if first <= s < first + timedelta(seconds=1)) for first in limited
    )
    assert len(limited) == 14
    assert busiest == 4
    assert limited[-1] - limited[0] >= timedelta(seconds=3)
    assert len({w for _, w in await starts("metered")}) >= 2, "several workers started them"
    # The other tenant of the same queue was not held back by it.
    others = [at for at, _ in await starts("free")]
    assert others[-1] < limited[-1]
    assert await run_audit(pool) == []
    log.unlink()
