"""``taskqueue bench --phases pooling`` (or ``python -m
taskqueue.benchmark.pooling``): a fleet of worker processes
through PgBouncer (transaction mode) against the same fleet connected
directly (README: "Connection poolers").

Phases, on a fresh database of the embedded server (or a trust-auth
DATABASE_URL): the fleet drains ``--tasks`` connected directly, then through
PgBouncer with ``--pool-size`` server connections and a direct listener per
process; pickup latency (enqueue to claim, one task at a time) through the
pooler with the direct listener and without it. Server connections are
sampled from pg_stat_activity throughout. ``--soak-seconds`` instead runs the
fleet through the pooler under a steady load for that long and reports
errors and connection counts over time."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import msgspec

from taskqueue import db, store
from taskqueue.benchmark import store as bench_store
from taskqueue.benchmark.options import Options
from taskqueue.benchmark.pgbouncer import find_pgbouncer, running_pgbouncer
from taskqueue.benchmark.runner import bench_database
from taskqueue.benchmark.tools import free_port, percentile, process, until, wait_http
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask

LISTENER = "taskqueue-worker-listen"
POOLED = "taskqueue-worker"
API = "taskqueue-api"
ERROR_LINE = re.compile(r"Traceback|ERROR|prepared statement|\bfailed\b")


class Settings(msgspec.Struct, kw_only=True):
    workers: int = 16
    concurrency: int = 10
    tasks: int = 20_000
    pool_size: int = 8
    pickups: int = 30
    apis: int = 2  # API processes in the connection-budget phase
    rest_tasks: int = 3000  # POSTed through them, 64 at a time, while the fleet drains
    soak_seconds: float = 0.0
    soak_rate: int = 200  # tasks a second during the soak


class Peaks:
    """The largest count of backends seen, by application_name, and of the
    API's and workers' pools together (the ones a pooler bounds)."""

    def __init__(self) -> None:
        self.by_name: dict[str, int] = {}
        self.pools = 0

    def add(self, counts: dict[str, int]) -> None:
        for name, n in counts.items():
            self.by_name[name] = max(self.by_name.get(name, 0), n)
        self.pools = max(self.pools, counts.get(API, 0) + counts.get(POOLED, 0))


@contextlib.asynccontextmanager
async def sampling(pool: asyncpg.Pool, every: float = 0.1) -> AsyncIterator[Peaks]:
    peaks = Peaks()

    async def sample() -> None:
        while True:
            peaks.add(await bench_store.backends_by_name(pool))
            await asyncio.sleep(every)

    task = asyncio.create_task(sample())
    try:
        yield peaks
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.contextmanager
def fleet(s: Settings, url: str, direct: str, logs: Path, tag: str) -> Iterator[list[Path]]:
    """``s.workers`` worker processes on ``url`` (and ``direct`` as their
    direct URL when set); yields their log files."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TASKQUEUE_DIRECT_URL": direct,
        "TASKQUEUE_CONCURRENCY": str(s.concurrency),
    }
    env.pop("TASKQUEUE_DATABASE_URL", None)
    files = [logs / f"{tag}-{i}.log" for i in range(s.workers)]
    with contextlib.ExitStack() as stack:
        for log in files:
            stack.enter_context(process(["worker"], env, log))
        yield files


async def running_workers(pool: asyncpg.Pool) -> int:
    return sum(w.state == "running" for w in await store.list_workers(pool))


async def wait_for_fleet(pool: asyncpg.Pool, n: int) -> None:
    async def ready() -> bool:
        return await running_workers(pool) == n

    await until(ready, 120, f"{n} workers running")


async def drain(pool: asyncpg.Pool, n: int) -> tuple[float, Peaks]:
    """Enqueue ``n`` tasks and wait for all to succeed: (tasks a second, peaks)."""
    await bench_store.reset(pool)
    after = await bench_store.last_event_id(pool)
    tq = TaskQueue(pool)
    async with sampling(pool) as peaks:
        for start in range(0, n, 1000):
            await tq.enqueue_many([NewTask(type="noop") for _ in range(min(1000, n - start))])

        async def done() -> bool:
            return (await bench_store.drain_progress(pool, after))[0] >= n

        await until(done, 600, f"{n} tasks drained")
    _, seconds = await bench_store.drain_progress(pool, after)
    return n / seconds, peaks


async def pickups(pool: asyncpg.Pool, n: int) -> list[float]:
    """Enqueue one task at a time into an idle fleet; seconds to each claim.
    A random pause before each lets polling workers back off to their idle
    interval, as between real bursts (right after work they poll sooner)."""
    tq = TaskQueue(pool)
    ids: list[uuid.UUID] = []
    for _ in range(n):
        await asyncio.sleep(random.uniform(0.5, 1.5))
        task = await tq.enqueue("noop")
        ids.append(task.id)

        async def succeeded(task_id: uuid.UUID = task.id) -> bool:
            return (await tq.get(task_id)).status == "succeeded"

        await until(succeeded, 30, "a pickup")
    return await bench_store.pickup_seconds(pool, ids)


@contextlib.asynccontextmanager
async def apis(s: Settings, url: str, logs: Path, tag: str) -> AsyncIterator[list[str]]:
    """``s.apis`` API processes on ``url``; yields their base URLs."""
    bases: list[str] = []
    with contextlib.ExitStack() as stack:
        for i in range(s.apis):
            port = free_port()
            env = {**os.environ, "DATABASE_URL": url, "TASKQUEUE_PORT": str(port)}
            env.pop("TASKQUEUE_DATABASE_URL", None)
            stack.enter_context(process(["api"], env, logs / f"{tag}-api-{i}.log"))
            bases.append(f"http://127.0.0.1:{port}")
        for base in bases:
            await wait_http(f"{base}/health", 60)
        yield bases


async def rest_load(pool: asyncpg.Pool, bases: list[str], n: int) -> Peaks:
    """POST ``n`` tasks through the APIs (64 at a time) and wait until the
    fleet has run them all; the peaks of server connections meanwhile."""
    import httpx

    await bench_store.reset(pool)
    limit = asyncio.Semaphore(64)
    async with sampling(pool) as peaks, httpx.AsyncClient(timeout=30) as client:

        async def post(i: int) -> None:
            async with limit:
                reply = await client.post(
                    f"{bases[i % len(bases)]}/api/tasks", json={"type": "noop"}
                )
                reply.raise_for_status()

        await asyncio.gather(*(post(i) for i in range(n)))

        async def done() -> bool:
            return await bench_store.unfinished_tasks(pool) == 0

        await until(done, 300, "the REST tasks drained")
    return peaks


async def budget(s: Settings, url: str, direct: str, pool: asyncpg.Pool, logs: Path) -> Peaks:
    """Server connections of ``s.apis`` APIs and ``s.workers`` workers under REST load."""
    tag = "budget-pooled" if direct else "budget-direct"
    with fleet(s, url, direct, logs, tag):
        async with apis(s, url, logs, tag) as bases:
            await wait_for_fleet(pool, s.workers)
            return await rest_load(pool, bases, s.rest_tasks)


def show_budget(what: str, peaks: Peaks) -> None:
    names = (API, POOLED, LISTENER)
    each = ", ".join(f"{name} {peaks.by_name.get(name, 0)}" for name in names)
    show(what, f"{each}; pools together {peaks.pools}")


def error_lines(files: list[Path]) -> list[str]:
    return [
        line
        for f in files
        for line in f.read_text(errors="replace").splitlines()
        if ERROR_LINE.search(line)
    ]


def show(name: str, value: object) -> None:
    print(f"  {name:<52} {value}", flush=True)


async def compare(s: Settings, dsn: str, pooled: str, pool: asyncpg.Pool, logs: Path) -> None:
    print(f"{s.workers} workers x concurrency {s.concurrency}, {s.tasks} noop tasks")
    with fleet(s, dsn, "", logs, "direct") as files:
        await wait_for_fleet(pool, s.workers)
        direct_rate, direct_peaks = await drain(pool, s.tasks)
    show("direct: drain (tasks/s)", f"{direct_rate:.0f}")
    show("direct: peak server connections of the workers", _ours(direct_peaks))
    show("direct: error lines in worker logs", len(error_lines(files)))
    with fleet(s, pooled, dsn, logs, "pooled") as files:
        await wait_for_fleet(pool, s.workers)
        rate, peaks = await drain(pool, s.tasks)
        show(f"pgbouncer (pool {s.pool_size}): drain (tasks/s)", f"{rate:.0f}")
        show("pgbouncer: share of the direct drain", f"{rate / direct_rate:.0%}")
        show("pgbouncer: peak pooled server connections", peaks.by_name.get(POOLED, 0))
        show("pgbouncer: peak direct listeners", peaks.by_name.get(LISTENER, 0))
        show("pgbouncer: unfinished tasks", await bench_store.unfinished_tasks(pool))
        waits = await pickups(pool, s.pickups)
        show("pgbouncer + direct listener: pickup p50 / p95 (ms)", _ms(waits))
        errors = error_lines(files)
    show("pgbouncer: error lines in worker logs", len(errors))
    for line in errors[:5]:
        print("   ", line[:200])
    with fleet(s, pooled, "", logs, "polling") as files:
        await wait_for_fleet(pool, s.workers)
        waits = await pickups(pool, s.pickups)
        show("pgbouncer, no direct URL (polling): pickup p50 / p95 (ms)", _ms(waits))
        async with sampling(pool) as idle:
            await asyncio.sleep(2)
        show("pgbouncer, no direct URL: peak pooled while idle", idle.by_name.get(POOLED, 0))
    show("polling: error lines in worker logs", len(error_lines(files)))
    print(f"connection budget: {s.apis} APIs + {s.workers} workers, {s.rest_tasks} tasks by REST")
    show_budget("direct: peak server connections", await budget(s, dsn, "", pool, logs))
    show_budget("pgbouncer: peak server connections", await budget(s, pooled, dsn, pool, logs))


async def soak(s: Settings, dsn: str, pooled: str, pool: asyncpg.Pool, logs: Path) -> None:
    print(f"soak: {s.workers} workers through pgbouncer (pool {s.pool_size}), {s.soak_rate}/s")
    tq = TaskQueue(pool)
    with fleet(s, pooled, dsn, logs, "soak") as files:
        await wait_for_fleet(pool, s.workers)
        await bench_store.reset(pool)
        started = time.monotonic()
        sent = 0
        next_report = started
        while time.monotonic() - started < s.soak_seconds:
            due = int((time.monotonic() - started) * s.soak_rate) - sent
            if due > 0:
                await tq.enqueue_many([NewTask(type="noop") for _ in range(due)])
                sent += due
            if time.monotonic() >= next_report:
                counts = await bench_store.backends_by_name(pool)
                show(
                    f"t={time.monotonic() - started:5.0f}s sent={sent}",
                    f"pooled={counts.get(POOLED, 0)} listeners={counts.get(LISTENER, 0)}"
                    f" all={sum(counts.values())}"
                    f" unfinished={await bench_store.unfinished_tasks(pool)}",
                )
                next_report += 30
            await asyncio.sleep(0.1)

        async def drained() -> bool:
            return await bench_store.unfinished_tasks(pool) == 0

        await until(drained, 300, "the soak's tasks drained")
        show("soak: tasks", sent)
        show("soak: error lines in worker logs", len(error_lines(files)))


def _ours(peaks: Peaks) -> int:
    return sum(n for name, n in peaks.by_name.items() if name.startswith("taskqueue-worker"))


def _ms(waits: list[float]) -> str:
    return f"{percentile(waits, 0.5) * 1000:.0f} / {percentile(waits, 0.95) * 1000:.0f}"


async def main(s: Settings) -> int:
    binary = find_pgbouncer()
    if binary is None:
        print("pgbouncer is not installed (Debian/Ubuntu: apt-get install pgbouncer)")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="taskqueue-bench-pooling-"))
    try:
        options = Options(database_url=os.environ.get("DATABASE_URL", ""))
        async with bench_database(options, workdir) as (dsn, server):
            print(server)
            pool = await db.create_pool(dsn, min_size=1, max_size=4, application_name="bench")
            try:
                with running_pgbouncer(binary, dsn, pool_size=s.pool_size) as bouncer:
                    run = soak if s.soak_seconds else compare
                    await run(s, dsn, bouncer.through(dsn), pool, workdir)
            finally:
                await pool.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def parse(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m taskqueue.benchmark.pooling")
    for field in Settings.__struct_fields__:
        default = getattr(Settings(), field)
        parser.add_argument(f"--{field.replace('_', '-')}", type=type(default), default=default)
    return Settings(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
