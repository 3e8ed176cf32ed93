"""Phase ``workflow``: a graph of ``layers`` x ``width`` tasks, each after 3
tasks of the layer before: how long ``tq.workflows.submit`` takes to accept
it, how fast one worker drains it against the same number of independent
tasks in the same run, and how soon a dependent starts once its last parent
succeeded (p50/p99, from the database's event times)."""

from __future__ import annotations

import statistics
import time

from taskqueue.benchmark import store as bench_store
from taskqueue.benchmark.phase import Run
from taskqueue.workflows import Workflow

LAYERS = 20
WIDTH = 500
FAN_IN = 3  # parents per task, from the layer before


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
    latencies = await bench_store.release_latencies(bench.pool)
    if len(latencies) >= 2:
        cuts = statistics.quantiles(latencies, n=100)
        bench.record("workflow_release_p50", statistics.median(latencies))
        bench.record("workflow_release_p99", cuts[98])
    await bench_store.reset(bench.pool)
    await bench.fill(n, f"workflow: {n:,} independent tasks (untimed)")
    bench.record("workflow_flat", await bench.drain_with_worker(n, f"{n:,} independent: drain"))
