"""Phase ``history``: the drain of phase 5 with ``history_rows`` finished
tasks (and their three events each) kept in the tables, against the same
drain on an empty database in the same run; and ``GET /api/queues`` (the
call behind it, ``tq.queues()``) timed with and without that history.

The history is loaded once, straight in SQL (INSERT ... SELECT
generate_series, in chunks), after the empty-database reps, because the
reference drains empty the tables. It is then left as a history that grew
over time would be: sealed into the history chain (the workers' sealer
seals events as they are written; a loaded history would otherwise be
sealed by the measured drain's worker, about 7 µs an event, all of it
during the drain) and vacuumed."""

from __future__ import annotations

import statistics
import time

from taskqueue import store
from taskqueue.benchmark import store as bench_store
from taskqueue.benchmark.options import QUEUES_CALLS
from taskqueue.benchmark.phase import Run

CHUNK = 500_000  # rows per INSERT: bounded memory, and progress to show
SEAL_TICK = 100_000  # events a sealing tick takes (a chunk's are one transaction, sealed whole)


async def drain_empty(bench: Run) -> None:
    await bench_store.reset(bench.pool)
    await _drain(bench, "history_ref", "no history")


async def load(bench: Run) -> None:
    total = bench.o.history_rows
    label = f"history: load {total:,} finished tasks"
    await bench_store.reset(bench.pool)
    for first in range(1, total + 1, CHUNK):
        last = min(total, first + CHUNK - 1)
        await bench_store.load_history(bench.pool, first, last, total)
        bench.progress.show(label, last, total)
    sealed = 0
    while sealed < 3 * total:  # three events a task
        tick = await store.seal_history(bench.pool, SEAL_TICK)
        if not tick:  # the chain is off, or another session seals: not as measured
            raise RuntimeError(f"history: sealed {sealed:,} of {3 * total:,} loaded events")
        sealed += tick
        bench.progress.show(f"history: seal {3 * total:,} events", sealed, 3 * total)
    await bench_store.vacuum_history(bench.pool)


async def drain_with_history(bench: Run) -> None:
    await _drain(bench, "history", f"{bench.o.history_rows:,} finished kept")


async def _drain(bench: Run, key: str, label: str) -> None:
    n = bench.o.drain_n
    await bench.fill(n, f"history, {label}: enqueue")
    await bench_store.vacuum_tasks(bench.pool)
    bench.record(key, await bench.drain_with_worker(n, f"history, {label}: drain"))
    bench.record(f"{key}_queues", await _time_queues(bench))


async def _time_queues(bench: Run) -> float:
    """Median milliseconds of tq.queues(), what GET /api/queues returns,
    after one untimed call (plans and caches warm, as on a live server)."""
    await bench.tq.queues()
    timings = []
    for _ in range(QUEUES_CALLS):
        started = time.perf_counter()
        await bench.tq.queues()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)
