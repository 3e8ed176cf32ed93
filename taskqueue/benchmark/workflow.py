"""Phase ``workflow``: a graph of ``layers`` x ``width`` tasks, each after 3
tasks of the layer before: how long ``tq.workflows.submit`` takes to accept
it, how fast one worker drains it against the same number of independent
tasks in the same run, and how soon a dependent starts once its last parent
succeeded (p50/p99, from the database's event times).

The release latency is measured on its own, on pairs (a parent and its
child) submitted at a steady pace a worker keeps up with: inside the graph's
drain a released child also waits behind the hundreds of its layer that
were released before it, which is the drain's rate, measured above, and not
the release. The in-drain p99 is reported too, for information."""

from __future__ import annotations

import asyncio
import statistics
import time

from taskqueue.benchmark import store as bench_store
from taskqueue.benchmark.phase import Run
from taskqueue.benchmark.tools import process, until
from taskqueue.models import NewTask
from taskqueue.workflows import Workflow, chain

LAYERS = 20
WIDTH = 500
FAN_IN = 3  # parents per task, from the layer before
PAIRS = 200  # parent -> child pairs for the release latency (fewer in small runs)
PAIR_GAP = 0.02  # seconds between pairs: 50 pairs/s, far below the drain rate


def graph(layers: int = LAYERS, width: int = WIDTH) -> Workflow:
    wf = Workflow(f"bench {layers}x{width}")
    for layer in range(layers):
        for i in range(width):
            after = [f"{layer - 1}.{(i + k * 7) % width}" for k in range(FAN_IN)] if layer else []
            wf.add("noop", ref=f"{layer}.{i}", after=after)
    return wf


async def run(bench: Run) -> None:
    layers, width = LAYERS, bench.o.workflow_width
    n = layers * width
    await bench_store.reset(bench.pool)
    wf = graph(layers, width)
    started = time.perf_counter()
    await bench.unchecked.workflows.submit(wf)
    bench.record("workflow_accept", time.perf_counter() - started)
    bench.record("workflow_drain", await bench.drain_with_worker(n, f"workflow {n:,}: drain"))
    in_drain = await bench_store.release_latencies(bench.pool)
    if len(in_drain) >= 2:
        bench.record("workflow_drain_release_p99", statistics.quantiles(in_drain, n=100)[98])
    await bench_store.reset(bench.pool)
    await bench.fill(n, f"workflow: {n:,} independent tasks (untimed)")
    bench.record("workflow_flat", await bench.drain_with_worker(n, f"{n:,} independent: drain"))
    latencies = await paced_releases(bench, max(10, min(PAIRS, width // 2)))
    if len(latencies) >= 2:
        bench.record("workflow_release_p50", statistics.median(latencies))
        bench.record("workflow_release_p99", statistics.quantiles(latencies, n=100)[98])


async def paced_releases(bench: Run, pairs: int) -> list[float]:
    """Submit ``pairs`` parent -> child chains PAIR_GAP apart to a running
    worker; each child's start after its parent's success, in ms."""
    await bench_store.reset(bench.pool)
    with process(["worker"], bench.env(), bench.log):
        for i in range(pairs):
            await bench.unchecked.workflows.submit(
                chain(NewTask(type="noop"), NewTask(type="noop"))
            )
            bench.progress.show("workflow: paced parent -> child pairs", i + 1, pairs)
            await asyncio.sleep(PAIR_GAP)  # the pace of the load, not synchronisation

        async def all_done() -> bool:
            return len(await bench_store.release_latencies(bench.pool)) >= pairs

        await until(all_done, 120, "every paced child's start")
    return await bench_store.release_latencies(bench.pool)
