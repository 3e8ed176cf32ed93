"""What a phase kept in its own module (history, pressure) may use of the
run (runner.Bench), as a Protocol: those modules do not import the runner,
which imports them."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import asyncpg

from taskqueue.benchmark.options import Options
from taskqueue.benchmark.tools import Progress
from taskqueue.client import TaskQueue


class Run(Protocol):
    o: Options
    dsn: str
    log: Path  # where worker processes write
    progress: Progress
    pool: asyncpg.Pool
    tq: TaskQueue  # checked against the registry
    unchecked: TaskQueue  # any type, no registry check

    def env(self, **extra: str) -> dict[str, str]: ...

    def record(self, key: str, value: float) -> None: ...

    async def fill(
        self, count: int, label: str, *, task_type: str = "noop", priority: int = 0
    ) -> None: ...

    async def drain_with_worker(self, count: int, label: str) -> float: ...
