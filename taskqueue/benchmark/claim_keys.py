"""Phases ``fairness``, ``sequences`` and ``keys``: what the claim statement
enforces for tenants and keys (migration 0014_claim_keys), measured.

* fairness: tenant ``a`` enqueues a backlog, one worker drains it, and
  meanwhile ``fairness_tenants`` other tenants each enqueue
  ``fairness_rate`` tasks/s: their pickup (created_at to started_at, the
  database's clock) while a's backlog is still there.
* sequences: ``sequence_keys`` keys x ``sequence_length`` tasks, every tenth
  failing its first attempt, drained by ``sequence_workers`` worker
  processes, ``sequence_kills`` of which are killed with SIGKILL on the way
  (and replaced); then overlaps and order violations within each key from
  task_events, and ``taskqueue audit``.
* keys: per_key_concurrency 1 across ``keys_workers`` workers of
  ``keys_concurrency``: the peak of running tasks per key, sampled; and one
  worker's drain of ``keys_n`` tasks over ``keys_distinct`` keys against the
  same drain without keys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

from taskqueue.audit import audit
from taskqueue.benchmark import store as bench_store
from taskqueue.benchmark.phase import Run
from taskqueue.benchmark.tools import percentile, process, until
from taskqueue.models import NewTask

FLOODING = "a"
HANDLERS = "taskqueue.benchmark.handlers"
TASK_MS = 2  # how long a sequences or keys task runs
Row = tuple[str, str, str, str, str | None, str | None, str | None, Any]


async def _enqueue(run: Run, tasks: list[NewTask], label: str) -> None:
    for start in range(0, len(tasks), 1000):
        await run.unchecked.enqueue_many(tasks[start : start + 1000])
        run.progress.show(label, min(start + 1000, len(tasks)), len(tasks))


# -- fairness -------------------------------------------------------------------


async def fairness(run: Run) -> None:
    o = run.o
    await bench_store.reset(run.pool)
    backlog = [NewTask(type="noop", tenant=FLOODING) for _ in range(o.fairness_backlog)]
    await _enqueue(run, backlog, f"fairness: tenant {FLOODING}'s backlog")
    with process(["worker"], run.env(), run.log):
        # Measured once the worker drains the backlog (startup left out).
        async def draining() -> bool:
            left = await bench_store.tenant_queued(run.pool, FLOODING)
            return left < o.fairness_backlog

        await until(draining, 60, "the worker's first claims")
        tick = 0.1
        started = time.monotonic()
        sent = 0
        due = 0.0
        while (elapsed := time.monotonic() - started) < o.fairness_seconds:
            due += o.fairness_rate * tick
            while due >= 1:
                for k in range(o.fairness_tenants):
                    await run.unchecked.enqueue("noop", tenant=f"t{k}")
                    sent += 1
                due -= 1
            run.progress.show("fairness: other tenants", elapsed, o.fairness_seconds)
            await asyncio.sleep(max(0.0, started + (elapsed // tick + 1) * tick - time.monotonic()))
        left = await bench_store.tenant_queued(run.pool, FLOODING)

        async def all_started() -> bool:
            return len(await bench_store.fair_pickups(run.pool, FLOODING)) >= sent

        await until(all_started, 120, "every small tenant's task to start")
    pickups = await bench_store.fair_pickups(run.pool, FLOODING)
    run.record("fairness_p50", percentile(pickups, 0.5))
    run.record("fairness_p99", percentile(pickups, 0.99))
    # What was left of the backlog when the others stopped: above 0, their
    # tasks were picked up while it drained.
    run.record("fairness_backlog_left", left)


# -- sequences ------------------------------------------------------------------


async def sequences(run: Run) -> None:
    o = run.o
    queue = "bench_sequences"
    await bench_store.reset(run.pool)
    since = await bench_store.database_now(run.pool)
    tasks = [
        NewTask(
            type="bench_keyed",
            queue=queue,
            sequence_key=f"k{k}",
            max_retries=5,
            payload={"pos": pos, "ms": TASK_MS, "fail": int((k * 31 + pos) % 10 == 0)},
        )
        for pos in range(o.sequence_length)
        for k in range(o.sequence_keys)
    ]
    await _enqueue(run, tasks, "sequences: enqueue")
    total = len(tasks)
    env = run.env(
        TASKQUEUE_QUEUES=queue,
        TASKQUEUE_HANDLERS=HANDLERS,
        TASKQUEUE_CONCURRENCY="20",
        # A killed worker's tasks come back within about a lease.
        TASKQUEUE_LEASE_SECONDS="2",
    )
    started = time.monotonic()
    with contextlib.ExitStack() as workers:
        procs = [
            workers.enter_context(process(["worker"], env, run.log))
            for _ in range(o.sequence_workers)
        ]

        def ended_at_least(count: int) -> Callable[[], Coroutine[Any, Any, bool]]:
            async def check() -> bool:
                left = await bench_store.unfinished_tasks(run.pool)
                run.progress.show("sequences: drain", total - left, total)
                return total - left >= count

            return check

        for kill in range(o.sequence_kills):
            share = (kill + 1) / (o.sequence_kills + 1)
            await until(ended_at_least(int(total * share)), 600, "sequences progress")
            victim = procs[kill % len(procs)]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            procs.append(workers.enter_context(process(["worker"], env, run.log)))
        await until(ended_at_least(total), 900, "every sequence to end")
    seconds = time.monotonic() - started
    overlaps, violations, unfinished = await bench_store.sequence_check(run.pool, queue)
    report = await audit(run.pool, since)
    run.record("sequences_rate", total / seconds)
    run.record("sequences_overlaps", overlaps)
    run.record("sequences_violations", violations)
    run.record("sequences_unfinished", unfinished)
    run.record("sequences_audit", len(report.violations))


# -- keys -----------------------------------------------------------------------


async def keys(run: Run) -> None:
    o = run.o
    queue = "bench_keys"
    await bench_store.reset(run.pool)
    await run.tq.set_limits(queue, per_key=1, actor="bench")
    try:
        n = max(o.keys_n // 10, 100)
        hot_keys = 50
        tasks = [
            NewTask(
                type="bench_keyed",
                queue=queue,
                concurrency_key=f"k{i % hot_keys}",
                payload={"ms": TASK_MS},
            )
            for i in range(n)
        ]
        await _enqueue(run, tasks, "keys: enqueue (peak)")
        env = run.env(
            TASKQUEUE_QUEUES=queue,
            TASKQUEUE_HANDLERS=HANDLERS,
            TASKQUEUE_CONCURRENCY=str(o.keys_concurrency),
        )
        peak = 0
        with contextlib.ExitStack() as workers:
            for _ in range(o.keys_workers):
                workers.enter_context(process(["worker"], env, run.log))
            while (left := await bench_store.unfinished_tasks(run.pool)) > 0:
                peak = max(peak, await bench_store.key_peak(run.pool, queue))
                run.progress.show("keys: peak per key", n - left, n)
        run.record("keys_peak", peak)
    finally:
        await run.tq.set_limits(queue, per_key=None, actor="bench")

    # One worker's drain with keys (every claim governed, each key counted)
    # against the same drain without.
    await bench_store.reset(run.pool)
    await run.tq.set_limits("default", per_key=1, actor="bench")
    try:
        keyed = [
            NewTask(type="noop", concurrency_key=f"k{i % o.keys_distinct}") for i in range(o.keys_n)
        ]
        await _enqueue(run, keyed, f"keys: {o.keys_distinct:,} keys, enqueue")
        run.record("keys_drain", await run.drain_with_worker(o.keys_n, "keys: drain with keys"))
    finally:
        await run.tq.set_limits("default", per_key=None, actor="bench")
    await bench_store.reset(run.pool)
    await run.fill(o.keys_n, "keys: no keys, enqueue")
    run.record("keys_drain_ref", await run.drain_with_worker(o.keys_n, "keys: drain without"))


PHASES: dict[str, Callable[[Run], Coroutine[Any, Any, None]]] = {
    "fairness": fairness,
    "sequences": sequences,
    "keys": keys,
}


def rows(o: Any) -> list[Row]:
    """The report's rows for these phases (see report._ROWS)."""
    zero = lambda v, r: v == 0  # noqa: E731 - the report's predicate shape
    return [
        (
            "fairness_p50",
            "13 fairness",
            f"{o.fairness_tenants} tenants' pickup, p50",
            "ms",
            None,
            None,
            None,
            None,
        ),
        (
            "fairness_p99",
            "13 fairness",
            f"{o.fairness_tenants} tenants' pickup, p99",
            "ms",
            None,
            None,
            "<= 50 ms",
            lambda v, r: v <= 50,
        ),
        (
            "fairness_backlog_left",
            "13 fairness",
            f"tenant {FLOODING}'s backlog left at the end",
            "tasks",
            None,
            None,
            "> 0",
            lambda v, r: v > 0,
        ),
        ("sequences_overlaps", "14 sequences", "overlaps within a key", "", None, None, "0", zero),
        (
            "sequences_violations",
            "14 sequences",
            "order violations within a key",
            "",
            None,
            None,
            "0",
            zero,
        ),
        ("sequences_unfinished", "14 sequences", "tasks not ended", "", None, None, "0", zero),
        ("sequences_audit", "14 sequences", "audit violations", "", None, None, "0", zero),
        ("sequences_rate", "14 sequences", "drain with 2 kills", "tasks/s", None, None, None, None),
        (
            "keys_peak",
            "15 keys",
            "peak running per key (limit 1), sampled",
            "",
            None,
            None,
            "1",
            lambda v, r: v == 1,
        ),
        (
            "keys_drain",
            "15 keys",
            f"drain, {o.keys_distinct:,} keys",
            "tasks/s",
            "keys_drain_ref",
            "drain without keys",
            ">= 80% of reference",
            lambda v, r: r is not None and v >= 0.8 * r,
        ),
    ]
