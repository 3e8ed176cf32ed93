"""Handlers for worker processes started by tests (``--handlers
tests.logged_handlers``): each execution appends its start and end, with the
wall clock, to the file named by TASKQUEUE_TEST_RUN_LOG, so that a test can
check from outside which executions overlapped and when they started."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Annotated

import msgspec

from taskqueue.registry import Registry, TaskContext

registry = Registry()


class Nap(msgspec.Struct):
    seconds: Annotated[float, msgspec.Meta(ge=0)] = 0.0


def _log(kind: str, ctx: TaskContext) -> None:
    line = f"{kind} {ctx.task_id} {ctx.attempt} {ctx.worker_id} {time.time():.6f}\n"
    # One small O_APPEND write per line: lines from several processes never interleave.
    fd = os.open(os.environ["TASKQUEUE_TEST_RUN_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@registry.task("logged_sleep", payload=Nap)
async def logged_sleep(payload: Nap, ctx: TaskContext) -> None:
    _log("start", ctx)
    try:
        await asyncio.sleep(payload.seconds)
    finally:
        _log("end", ctx)


class Execution(msgspec.Struct, frozen=True):
    task_id: uuid.UUID
    attempt: int
    worker_id: str
    started: float
    ended: float | None


def read_run_log(path: str) -> list[Execution]:
    """The executions a run log records, in start order (``ended`` is None
    if one never ended: its process was killed)."""
    open_runs: dict[tuple[str, str, str], list[int]] = {}
    runs: list[list[str | float | None]] = []
    with open(path) as log:
        for line in log:
            kind, task_id, attempt, worker_id, at = line.split()
            key = (task_id, attempt, worker_id)
            if kind == "start":
                open_runs.setdefault(key, []).append(len(runs))
                runs.append([task_id, attempt, worker_id, float(at), None])
            elif open_runs.get(key):
                runs[open_runs[key].pop(0)][4] = float(at)
    return [
        Execution(
            task_id=uuid.UUID(str(task_id)),
            attempt=int(str(attempt)),
            worker_id=str(worker_id),
            started=float(str(started)),
            ended=None if ended is None else float(str(ended)),
        )
        for task_id, attempt, worker_id, started, ended in runs
    ]


def overlaps(executions: list[Execution]) -> list[tuple[uuid.UUID, float]]:
    """For each task, how long any two of its executions ran at once
    (positive values only)."""
    found: list[tuple[uuid.UUID, float]] = []
    by_task: dict[uuid.UUID, list[Execution]] = {}
    for execution in executions:
        by_task.setdefault(execution.task_id, []).append(execution)
    for task_id, runs in by_task.items():
        runs.sort(key=lambda r: r.started)
        for i, earlier in enumerate(runs):
            for later in runs[i + 1 :]:
                end = earlier.ended if earlier.ended is not None else float("inf")
                if end > later.started:
                    found.append((task_id, min(end, later.ended or end) - later.started))
    return found
