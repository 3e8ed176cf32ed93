"""Phase ``crash``: ``crash_runs`` times, a graph (5 layers of 20 tasks,
each after 3 of the layer before, every task a short sleep) drains with a
steady worker and a second one that is killed with SIGKILL three times,
once per quarter of the graph while it holds tasks, and replaced. After each run it counts what
a crash could have broken: tasks left ``waiting`` although every parent is
terminal (stranded), children started before a parent succeeded (order),
and the violations ``taskqueue audit`` finds. Every figure must be 0."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from taskqueue.audit import audit
from taskqueue.benchmark import store as bench_store
from taskqueue.benchmark.options import Options
from taskqueue.benchmark.phase import Run
from taskqueue.benchmark.tools import process, until
from taskqueue.workflows import Workflow

WIDTH, DEPTH, FAN_IN = 20, 5, 3
KILLS = 3  # per run, at 1/4, 2/4 and 3/4 of the graph
FAST = {  # short leases, so the killed worker's tasks are rescued quickly
    "TASKQUEUE_LEASE_SECONDS": "1.5",
    "TASKQUEUE_HEARTBEAT_SECONDS": "0.5",
}
# The steady worker runs one task at a time, so that it cannot drain the
# graph before each doomed worker (eight at a time) has claimed some.
STEADY, DOOMED = "1", "8"
SLEEP = 0.1  # seconds a task takes


def graph(run: int) -> Workflow:
    wf = Workflow(f"crash {run}")
    for layer in range(DEPTH):
        for i in range(WIDTH):
            after = [f"{layer - 1}.{(i + k * 7) % WIDTH}" for k in range(FAN_IN)] if layer else []
            wf.add("sleep", {"seconds": SLEEP}, ref=f"{layer}.{i}", after=after, max_retries=10)
    return wf


async def run(bench: Run) -> None:
    stranded = out_of_order = violations = held = 0
    total = WIDTH * DEPTH
    steady = bench.env(**FAST, TASKQUEUE_CONCURRENCY=STEADY)
    doomed_env = bench.env(**FAST, TASKQUEUE_CONCURRENCY=DOOMED)
    for n in range(bench.o.crash_runs):
        await bench_store.reset(bench.pool)
        await bench.unchecked.workflows.submit(graph(n))
        with process(["worker"], steady, bench.log):
            for kill in range(KILLS):
                with process(["worker"], doomed_env, Path(bench.log)) as doomed:
                    goal = min(total - 1, (kill + 1) * total // (KILLS + 1))

                    # Killed only while it holds tasks: a kill between claims
                    # would prove nothing.
                    async def holding(goal: int = goal, pid: int = doomed.pid) -> bool:
                        return (
                            await bench_store.succeeded_tasks(bench.pool) >= goal
                            and await bench_store.held_by_process(bench.pool, pid) > 0
                        )

                    await until(holding, 120, f"crash run {n + 1}: {goal} done, tasks held")
                    doomed.send_signal(signal.SIGKILL)
                    doomed.wait()
                    held += 1

            async def finished() -> bool:
                return await bench_store.unfinished_tasks(bench.pool) == 0

            await until(finished, 300, f"crash run {n + 1}: the whole graph")
        stranded += await bench_store.stranded_waiting(bench.pool)
        out_of_order += await bench_store.started_before_parent(bench.pool)
        violations += len((await audit(bench.pool)).violations)
        bench.progress.show("crash: kill -9 runs", n + 1, bench.o.crash_runs)
    bench.record("crash_kills", held)
    bench.record("crash_stranded", stranded)
    bench.record("crash_out_of_order", out_of_order)
    bench.record("crash_audit", violations)


# The report's rows for this phase (as benchmark.report's Row).
Row = tuple[str, str, str, str, str | None, str | None, str | None, Any]


def rows(o: Options) -> list[Row]:
    return [
        (
            "crash_kills",
            "13 crash",
            "kill -9 of a worker holding tasks",
            "kills",
            None,
            None,
            None,
            None,
        ),
        (
            "crash_stranded",
            "13 crash",
            f"waiting with every parent terminal, {o.crash_runs} kill -9 runs",
            "tasks",
            None,
            None,
            "0",
            lambda v, r: v == 0,
        ),
        (
            "crash_out_of_order",
            "13 crash",
            "children started before a parent succeeded",
            "tasks",
            None,
            None,
            "0",
            lambda v, r: v == 0,
        ),
        (
            "crash_audit",
            "13 crash",
            "taskqueue audit violations",
            "tasks",
            None,
            None,
            "0",
            lambda v, r: v == 0,
        ),
    ]
