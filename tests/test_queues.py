"""Queue settings, enforced inside the claim: pause and resume across
workers, and concurrency and rate limits that hold across three real worker
processes, judged from the database's own event times; and how long a
queue keeps its finished tasks."""

from __future__ import annotations

import asyncio
import signal
import tempfile
import uuid
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from taskqueue import store
from taskqueue.client import TaskQueue
from taskqueue.config import Settings
from taskqueue.errors import InvalidArgument, QueueNotFound
from taskqueue.models import NewTask, RateLimit
from tests.helpers import all_in_status, run_audit, running_worker, wait_until, worker_process


async def started_by(pool: asyncpg.Pool, queue: str) -> set[str]:
    rows = await pool.fetch(
        "SELECT DISTINCT e.worker_id FROM taskqueue.task_events e"
        " JOIN taskqueue.tasks t ON t.id = e.task_id"
        " WHERE t.queue = $1 AND e.event_type = 'task_started'",
        queue,
    )
    return {r["worker_id"] for r in rows}


async def test_a_paused_queue_is_claimed_by_no_worker_until_it_is_resumed(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    long = await tq.enqueue("sleep", {"seconds": 0.5})
    async with (
        running_worker(database_url, queues=("default", "probe"), worker_id="w1"),
        running_worker(database_url, queues=("default", "probe"), worker_id="w2"),
    ):
        await wait_until(lambda: all_in_status(pool, [long.id], "running"))
        paused = await tq.pause("default")
        assert paused.paused
        held = await tq.enqueue_many([NewTask(type="noop") for _ in range(20)])
        ids = [t.id for t in held]
        # Both workers claim again after the pause (a claim takes both
        # queues at once): were "default" not paused, they would have taken it.
        while await started_by(pool, "probe") != {"w1", "w2"}:
            await tq.enqueue_many([NewTask(type="noop", queue="probe") for _ in range(4)])
            await asyncio.sleep(0.05)
        assert await all_in_status(pool, ids, "queued")
        # What was running when the queue was paused finishes.
        await wait_until(lambda: all_in_status(pool, [long.id], "succeeded"))
        info = await tq.queue("default")
        assert (info.paused, info.queued, info.due) == (True, 20, 20)
        resumed = await tq.resume("default")
        assert not resumed.paused
        await wait_until(lambda: all_in_status(pool, ids, "succeeded"))
    actions = [(a.action, a.scope, a.actor) for a in await tq.actions()]
    assert actions[:2] == [
        ("resume", {"queue": "default"}, "local"),
        ("pause", {"queue": "default"}, "local"),
    ]


async def test_concurrency_and_rate_limits_hold_across_three_worker_processes(
    tq: TaskQueue, pool: asyncpg.Pool, database_url: str
) -> None:
    await tq.set_limits("narrow", concurrency=5)
    await tq.set_limits("metered", rate=(10, 1.0))
    narrow = await tq.enqueue_many(
        [NewTask(type="sleep", queue="narrow", payload={"seconds": 0.1}) for _ in range(60)]
    )
    metered = await tq.enqueue_many([NewTask(type="noop", queue="metered") for _ in range(35)])
    free = await tq.enqueue_many([NewTask(type="noop", queue="free") for _ in range(300)])
    ids = [t.id for t in narrow + metered + free]
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    running_samples: list[int] = []
    async with AsyncExitStack() as stack:
        procs = [
            await stack.enter_async_context(
                worker_process(database_url, log, queues="narrow,metered,free", concurrency="20")
            )
            for _ in range(3)
        ]

        async def finished() -> bool:
            running_samples.append(
                int(
                    await pool.fetchval(
                        "SELECT count(*) FROM taskqueue.tasks"
                        " WHERE queue = 'narrow' AND status = 'running'"
                    )
                )
            )
            return await all_in_status(pool, ids, "succeeded")

        await wait_until(finished, timeout=90, interval=0.01)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert await asyncio.wait_for(proc.wait(), 30) == 0, log.read_text()

    # Concurrency, from the events: the most tasks of the queue between their
    # task_started and their finish at any point. Event ids, not times, give
    # the order: now() is when a statement began, and a claim may begin, wait
    # for the queue's lock while a completion frees a slot, then go on; the ids
    # it writes come after that completion's.
    spans = await pool.fetch(
        "SELECT s.id AS started, f.id AS finished FROM taskqueue.task_events s"
        " JOIN taskqueue.task_events f ON f.task_id = s.task_id"
        "  AND f.event_type = 'task_succeeded' AND f.attempt = s.attempt"
        " JOIN taskqueue.tasks t ON t.id = s.task_id"
        " WHERE s.event_type = 'task_started' AND t.queue = 'narrow'"
    )
    edges = sorted(
        [(r["started"], 1) for r in spans] + [(r["finished"], -1) for r in spans],
    )
    at_once = peak = 0
    for _, step in edges:
        at_once += step
        peak = max(peak, at_once)
    # Rate, from the events: starts within any rolling second.
    starts = sorted(
        r["at"]
        for r in await pool.fetch(
            "SELECT e.at FROM taskqueue.task_events e JOIN taskqueue.tasks t ON t.id = e.task_id"
            " WHERE e.event_type = 'task_started' AND t.queue = 'metered'"
        )
    )
    busiest = max(
        sum(1 for s in starts if first <= s < first + timedelta(seconds=1)) for first in starts
    )
    free_span = await pool.fetchval(
        "SELECT max(e.at) - min(e.at) FROM taskqueue.task_events e"
        " JOIN taskqueue.tasks t ON t.id = e.task_id WHERE t.queue = 'free'"
        " AND e.event_type IN ('task_started', 'task_succeeded')"
    )
    print(
        f"\nlimits: narrow ran at most {peak} at once (limit 5; sampled max"
        f" {max(running_samples)}), metered started at most {busiest} in any second"
        f" (limit 10) over {(starts[-1] - starts[0]).total_seconds():.1f}s"
    )
    assert len(spans) == 60
    assert peak == 5
    assert max(running_samples) <= 5
    assert busiest == 10
    assert (starts[-1] - starts[0]) >= timedelta(seconds=3)  # 35 starts at 10 a second
    # The unlimited queue, claimed in the same statements, was not held back.
    assert free_span < timedelta(seconds=2)
    info = await tq.queue("narrow")
    assert (info.running, info.concurrency_limit) == (0, 5)
    assert await pool.fetchval("SELECT running FROM taskqueue.queues WHERE name = 'narrow'") == 0
    assert await run_audit(pool) == []
    log.unlink()


async def test_setting_a_limit_counts_the_tasks_already_running(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    await tq.enqueue_many([NewTask(type="noop", queue="busy") for _ in range(6)])
    claimed = await store.claim_tasks(pool, ["busy"], 4, "w", 30, types=["noop"], governed=True)
    assert len(claimed) == 4
    info = await tq.set_limits("busy", concurrency=4)
    assert (info.concurrency_limit, info.running) == (4, 4)
    assert await pool.fetchval("SELECT running FROM taskqueue.queues WHERE name = 'busy'") == 4
    # Full: the next claim gets nothing until one finishes.
    assert await store.claim_tasks(pool, ["busy"], 10, "w", 30, types=["noop"], governed=True) == []
    from taskqueue.models import Outcome, OutcomeKind

    done = Outcome(task_id=claimed[0].id, attempt=1, kind=OutcomeKind.SUCCEEDED)
    await store.complete_tasks(pool, [done], "w")
    assert (
        len(await store.claim_tasks(pool, ["busy"], 10, "w", 30, types=["noop"], governed=True))
        == 1
    )
    # A count that went wrong (here: by hand) is put right by the rescuer's pass.
    await pool.execute("UPDATE taskqueue.queues SET running = 0 WHERE name = 'busy'")
    async with pool.acquire() as conn:
        assert await store.recount_running(conn) == {"busy": 4}
    # Removing the limit lets the rest go; leaving the rate out keeps it unset.
    info = await tq.set_limits("busy", concurrency=None)
    assert (info.concurrency_limit, info.rate_limit) == (None, None)
    assert (
        len(await store.claim_tasks(pool, ["busy"], 10, "w", 30, types=["noop"], governed=True))
        == 1
    )


async def test_queue_settings_are_checked_and_reported(tq: TaskQueue, pool: asyncpg.Pool) -> None:
    for bad in (0, -1, 1.5, True, 10**9):
        with pytest.raises(InvalidArgument) as caught:
            await tq.set_limits("q", concurrency=bad)
        assert caught.value.field == "concurrency_limit"
    for rate, field in (
        ((0, 1.0), "rate_limit.limit"),
        ((5, 0), "rate_limit.period_seconds"),
        ((5, float("nan")), "rate_limit.period_seconds"),
        ((5, -1.0), "rate_limit.period_seconds"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            await tq.set_limits("q", rate=rate)
        assert caught.value.field == field
    with pytest.raises(InvalidArgument):
        await tq.set_limits("q")
    with pytest.raises(QueueNotFound):
        await tq.queue("nothing-here")
    # A queue with no tasks yet gets its settings row: PATCH on an unknown queue creates it.
    info = await tq.set_limits("later", concurrency=3, rate=(100, 60))
    assert info.rate_limit == RateLimit(limit=100, period_seconds=60)
    assert (info.name, info.concurrency_limit, info.queued, info.workers) == ("later", 3, 0, 0)
    assert "later" in {q.name for q in await tq.queues()}
    assert isinstance(info.oldest_due_age_seconds, float)
    logged = (await tq.actions(limit=1))[0]
    assert (logged.action, logged.scope) == (
        "limit",
        {
            "queue": "later",
            "concurrency_limit": 3,
            "rate_limit": {"limit": 100, "period_seconds": 60},
        },
    )
    assert isinstance(logged.at, datetime)
    assert uuid.UUID(int=0) not in {q.name for q in await tq.queues()}


async def test_a_queue_keeps_finished_tasks_as_long_as_it_is_told(
    tq: TaskQueue, pool: asyncpg.Pool
) -> None:
    info = await tq.queues.set_retention("mail", succeeded=timedelta(hours=12), cancelled="3d")
    assert (info.retain_succeeded, info.retain_failed, info.retain_cancelled) == ("12h", "2w", "3d")
    for asked, field in (
        ({"succeeded": "soon"}, "retain_succeeded"),
        ({"failed": timedelta(0)}, "retain_failed"),
        ({"cancelled": 5}, "retain_cancelled"),
        ({}, "body"),
    ):
        with pytest.raises(InvalidArgument) as raised:
            await tq.queues.set_retention("mail", **asked)
        assert raised.value.field == field
    # The defaults a queue shows are the ones the TaskQueue was given.
    mine = TaskQueue(pool, retention=Settings(retain_failed="30d").retention)
    assert (await mine.queue("mail")).retain_failed == "30d"
    back = await tq.queues.set_retention("mail", succeeded=None, cancelled=None)
    assert (back.retain_succeeded, back.retain_cancelled) == ("1d", "1w")
    assert await pool.fetchval("SELECT count(*) FROM taskqueue.queue_retention") == 0
