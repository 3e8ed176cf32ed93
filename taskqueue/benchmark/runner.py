"""The benchmark phases, their references, and the report.

Every figure is measured ``reps`` times and reported as the median, next to a
reference measured in the same run on the same server: the commit ceiling
(single-row INSERTs), the SQL ceiling (claim + complete in a plain loop), or
the shallow-queue drain for the depth phase. Drain rates come from the event
timestamps the database wrote (first ``task_started`` to last
``task_succeeded``), not from a client clock."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from taskqueue import db, enqueue, store
from taskqueue.benchmark import claim_keys, crash, history, workflow
from taskqueue.benchmark import store as bench_store
from taskqueue.benchmark.options import (
    BATCH_CONNECTIONS,
    BULK_BATCH,
    BULK_PRODUCERS,
    DRAIN_POLL_SECONDS,
    LIMIT,
    REFERENCE_CLAIM_BATCH,
    REST_CONNECTIONS,
    UNKNOWN_AHEAD,
    rest_load_generator,
)
from taskqueue.benchmark.options import PHASES as PHASES
from taskqueue.benchmark.options import Options as Options
from taskqueue.benchmark.pressure import run_pressure
from taskqueue.benchmark.report import PressureRun, Report, figures, machine
from taskqueue.benchmark.report import render_table as render_table
from taskqueue.benchmark.tools import (
    PeakRss,
    Progress,
    free_port,
    percentile,
    pgbench_inserts,
    process,
    python_load,
    scrape_every,
    until,
    wait_http,
    with_database,
    wrk,
)
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.registry import load_registry
from taskqueue.sync import TaskQueue as SyncTaskQueue

# -- the run -------------------------------------------------------------------


class Bench:
    def __init__(self, options: Options, dsn: str, workdir: Path) -> None:
        self.o = options
        self.dsn = dsn
        self.workdir = workdir
        self.progress = Progress(options.quiet)
        self.results: dict[str, list[float]] = {}
        self.pressure_runs: list[PressureRun] = []
        self.log = workdir / "processes.log"
        self.pool: asyncpg.Pool
        self.tq: TaskQueue
        self.unchecked: TaskQueue  # untimed fills, of any type (no registry check)

    def record(self, key: str, value: float) -> None:
        self.results.setdefault(key, []).append(value)

    def env(self, **extra: str) -> dict[str, str]:
        variables = {**os.environ, "DATABASE_URL": self.dsn, "TASKQUEUE_CONCURRENCY": "10"}
        variables.pop("TASKQUEUE_DATABASE_URL", None)
        variables.update(extra)
        return variables

    async def fill(
        self, count: int, label: str, *, task_type: str = "noop", priority: int = 0
    ) -> None:
        done = 0
        while done < count:
            size = min(BULK_BATCH, count - done)
            await self.unchecked.enqueue_many(
                [NewTask(type=task_type, priority=priority) for _ in range(size)]
            )
            done += size
            self.progress.show(label, done, count)

    # phase 1 -------------------------------------------------------------------
    async def single(self) -> None:
        n = self.o.single_n
        await bench_store.reset(self.pool)
        async with self.pool.acquire() as conn:
            started = time.perf_counter()
            for i in range(n):
                await bench_store.reference_insert(conn, uuid.uuid4(), {"i": i})
                if i % 100 == 0:
                    self.progress.show("commit ceiling (reference)", i, n)
            ref_seconds = time.perf_counter() - started
            self.record("single_ref", n / ref_seconds)
            self.progress.show("commit ceiling (reference)", n, n)
        # The same INSERT from pgbench: the server's ceiling with no Python client.
        pgbench = await asyncio.to_thread(
            pgbench_inserts, self.dsn, bench_store.query_path("pgbench_insert"), ref_seconds
        )
        if pgbench is not None:
            self.record("single_pgbench", pgbench)
        started = time.perf_counter()
        for i in range(n):
            await self.tq.enqueue("noop", {"i": i})
            if i % 100 == 0:
                self.progress.show("enqueue, single", i, n)
        self.record("single", n / (time.perf_counter() - started))
        self.progress.show("enqueue, single", n, n)
        # The sync producer (taskqueue.sync on psycopg), blocking in a thread of its own.
        self.record("single_sync", await asyncio.to_thread(self._single_sync, n))

    def _single_sync(self, n: int) -> float:
        with SyncTaskQueue.connect(self.dsn, self.tq.registry, max_size=1) as tq:
            started = time.perf_counter()
            for i in range(n):
                tq.enqueue("noop", {"i": i})
                if i % 100 == 0:
                    self.progress.show("enqueue, single, sync", i, n)
            rate = n / (time.perf_counter() - started)
        self.progress.show("enqueue, single, sync", n, n)
        return rate

    # phase 2 -------------------------------------------------------------------
    async def bulk(self) -> None:
        # One producer awaiting each call, then BULK_PRODUCERS at once: one
        # producer leaves the server idle while it prepares the next call.
        self.record("bulk", await self._bulk_rate(1, "enqueue, bulk"))
        label = f"enqueue, bulk, {BULK_PRODUCERS} producers"
        self.record("bulk_producers", await self._bulk_rate(BULK_PRODUCERS, label))
        # The reference: the same calls, each one INSERT statement (no COPY).
        label = "enqueue, bulk, one statement (reference)"
        self.record("bulk_statement", await self._bulk_rate(1, label, by_statement=True))

    async def _one_statement(self, batch: list[NewTask]) -> None:
        rows = self.tq.prepare(batch)
        async with self.pool.acquire() as conn:
            results = await store.enqueue_tasks_by_statement(conn, rows)
        enqueue.decode_payloads(results)

    async def _bulk_rate(self, producers: int, label: str, *, by_statement: bool = False) -> float:
        n = self.o.bulk_n
        await bench_store.reset(self.pool)
        batches = [
            [
                NewTask(type="noop", payload={"i": i})
                for i in range(start, min(n, start + BULK_BATCH))
            ]
            for start in range(0, n, BULK_BATCH)
        ]
        done = 0

        async def producer(mine: list[list[NewTask]]) -> None:
            nonlocal done
            for batch in mine:
                if by_statement:
                    await self._one_statement(batch)
                else:
                    await self.tq.enqueue_many(batch)
                done += 1
                self.progress.show(label, done, len(batches))

        started = time.perf_counter()
        await asyncio.gather(*(producer(batches[k::producers]) for k in range(producers)))
        return n / (time.perf_counter() - started)

    # phases 3 and 4 ----------------------------------------------------------
    async def rest(self) -> None:
        await bench_store.reset(self.pool)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with process(["api"], self.env(TASKQUEUE_PORT=str(port)), self.log) as api:
            await wait_http(f"{base}/ready", 60)
            single = msgspec.json.encode({"type": "noop", "name": "bench", "payload": {"n": 1}})
            batch = msgspec.json.encode(
                {"tasks": [{"type": "noop", "payload": {"n": i}} for i in range(BULK_BATCH)]}
            )
            with PeakRss(api.pid) as rss:
                rate, p50, p99, errors = await self._load(
                    f"{base}/api/tasks", single, REST_CONNECTIONS, "REST, single"
                )
            self.record("rest_single", rate)
            self.record("rest_p50", p50)
            self.record("rest_p99", p99)
            self.record("api_rss", rss.megabytes)
            rate, _, _, batch_errors = await self._load(
                f"{base}/api/tasks/batch", batch, BATCH_CONNECTIONS, "REST, batch"
            )
            self.record("rest_batch", rate * BULK_BATCH)
            if errors or batch_errors:
                raise RuntimeError(f"benchmark: {errors + batch_errors} REST requests failed")

    async def _load(
        self, url: str, body: bytes, connections: int, label: str
    ) -> tuple[float, float, float, int]:
        """(requests/s, p50 ms, p99 ms, failed requests)."""
        body_file = self.workdir / "body.json"
        body_file.write_bytes(body)
        seconds = self.o.rest_seconds
        ticker = asyncio.create_task(self._tick(label, seconds))
        try:
            if rest_load_generator(self.o) == "wrk":
                return await asyncio.to_thread(
                    wrk, url, body_file, connections, seconds, self.workdir
                )
            return await asyncio.to_thread(python_load, url, body_file, connections, seconds)
        finally:
            ticker.cancel()
            self.progress.show(label, 1, 1)

    async def _tick(self, label: str, seconds: float) -> None:
        started = time.monotonic()
        while True:
            self.progress.show(label, time.monotonic() - started, seconds * 1.05)
            await asyncio.sleep(0.2)

    # phase 5 -------------------------------------------------------------------
    async def drain(self) -> None:
        n = self.o.drain_n
        await bench_store.reset(self.pool)
        await self.fill(n, "drain: enqueue (untimed)")
        self.record("drain", await self.drain_with_worker(n, "drain: worker", key="drain"))

        # The same drain with the worker's Prometheus metrics on, and scraped.
        await bench_store.reset(self.pool)
        await self.fill(n, "drain, metrics on: enqueue (untimed)")
        port = free_port()
        self.record(
            "drain_metrics",
            await self.drain_with_worker(
                n,
                "drain, metrics on: worker",
                self.env(TASKQUEUE_METRICS_PORT=str(port)),
                key="drain_metrics",
                scrape=f"http://127.0.0.1:{port}/metrics",
            ),
        )

        await bench_store.reset(self.pool)
        await self.fill(n, "SQL ceiling: enqueue (untimed)")
        since = await bench_store.last_event_id(self.pool)
        # The same claim a worker with the built-in types sends.
        types = load_registry([]).names()
        async with self.pool.acquire() as conn:
            done = 0
            while claimed := await store.claim_tasks(
                conn, ["default"], REFERENCE_CLAIM_BATCH, "bench-reference", 30, types=types
            ):
                outcomes = [
                    Outcome(task_id=t.id, attempt=t.attempt, kind=OutcomeKind.SUCCEEDED)
                    for t in claimed
                ]
                await store.complete_tasks(conn, outcomes, "bench-reference")
                done += len(claimed)
                self.progress.show("SQL ceiling (reference)", done, n)
        succeeded, seconds = await bench_store.drain_progress(self.pool, since)
        self.record("drain_ref", succeeded / seconds)

    async def drain_with_worker(
        self,
        count: int,
        label: str,
        env: dict[str, str] | None = None,
        rss_key: str = "",
        *,
        key: str = "",
        scrape: str = "",
    ) -> float:
        """Start a worker, wait until ``count`` more tasks succeeded, stop it;
        tasks/s from the database's event timestamps. With ``key``, also the
        worker's peak RSS (``key``_rss) and its CPU per task from a tenth of
        the tasks on (``key``_cpu, startup left out); with ``scrape``, GET
        that URL every METRICS_SCRAPE_SECONDS meanwhile."""
        since = await bench_store.last_event_id(self.pool)
        marks: list[tuple[int, float]] = []
        with (
            process(["worker"], env or self.env(), self.log) as worker,
            PeakRss(worker.pid) as rss,
        ):
            scraping = asyncio.create_task(scrape_every(scrape)) if scrape else None

            async def finished() -> bool:
                succeeded, _ = await bench_store.drain_progress(self.pool, since)
                self.progress.show(label, succeeded, count)
                if key and ((not marks and succeeded >= count // 10) or succeeded >= count):
                    marks.append((succeeded, rss.cpu_seconds()))
                return succeeded >= count

            try:
                await until(finished, 600, f"{label} of {count} tasks", every=DRAIN_POLL_SECONDS)
            finally:
                if scraping is not None:
                    scraping.cancel()
        if rss_key:
            self.record(rss_key, rss.megabytes)
        if key:
            self.record(f"{key}_rss", rss.megabytes)
            (first, cpu_first), (last, cpu_last) = marks[0], marks[-1]
            if last > first and cpu_last > cpu_first:  # else too short a drain to tell
                self.record(f"{key}_cpu", (cpu_last - cpu_first) / (last - first) * 1e6)
        succeeded, seconds = await bench_store.drain_progress(self.pool, since)
        return succeeded / seconds

    # phase 6 -------------------------------------------------------------------
    async def pickup(self) -> None:
        n = self.o.pickup_n
        await bench_store.reset(self.pool)
        env = self.env(TASKQUEUE_HANDLERS="taskqueue.benchmark.handlers")
        with process(["worker"], env, self.log):
            # A first probe proves the worker listens; it is not measured.
            warmup = await self.tq.enqueue("bench_probe", {"sent_ns": time.time_ns()})
            await until(lambda: _succeeded(self.tq, warmup.id), 60, "the worker's first pickup")
            await bench_store.reset(self.pool)
            for i in range(n):
                await self.tq.enqueue("bench_probe", {"sent_ns": time.time_ns()})
                self.progress.show("pickup latency", i + 1, n)
                await asyncio.sleep(0.01)

            async def all_done() -> bool:
                return len(await bench_store.probe_latencies(self.pool)) >= n

            await until(all_done, 120, "every probe's pickup")
        latencies = [ns / 1e6 for ns in await bench_store.probe_latencies(self.pool)]
        for key, share in (("pickup_p50", 0.5), ("pickup_p95", 0.95), ("pickup_p99", 0.99)):
            self.record(key, percentile(latencies, share))
        self.record("pickup_max", max(latencies))

    # phase 5b ------------------------------------------------------------------
    async def limited(self) -> None:
        """The drain of phase 5 with a concurrency limit on the queue: every
        claim goes through the governed statement, which locks the queue's
        row and counts what it starts and finishes."""
        n = self.o.drain_n
        await bench_store.reset(self.pool)
        await self.tq.set_limits("default", concurrency=LIMIT, actor="bench")
        try:
            await self.fill(n, f"limit {LIMIT:,}: enqueue (untimed)")
            self.record("limited", await self.drain_with_worker(n, f"limit {LIMIT:,}: worker"))
        finally:
            await self.tq.set_limits("default", concurrency=None, actor="bench")

    # phase 7 -------------------------------------------------------------------
    async def unknown(self) -> None:
        """Drain a queue with a backlog of a type the worker cannot run ahead
        of the tasks it can (it must walk past them for free), against the
        same drain with no such backlog."""
        count = self.o.depth_drain
        await bench_store.reset(self.pool)
        await self.fill(count, "no unknown types: enqueue")
        await bench_store.vacuum_tasks(self.pool)
        self.record("unknown_ref", await self.drain_with_worker(count, "no unknown types: drain"))
        await bench_store.reset(self.pool)
        label = f"{UNKNOWN_AHEAD:,} unknown ahead"
        await self.fill(UNKNOWN_AHEAD, f"{label}: enqueue", task_type="bench_unknown", priority=1)
        await self.fill(count, f"{label}: enqueue")
        await bench_store.vacuum_tasks(self.pool)
        self.record("unknown", await self.drain_with_worker(count, f"{label}: drain"))

    # phase 8 and 9 -----------------------------------------------------------
    async def depth_shallow(self) -> None:
        count = self.o.depth_drain
        await bench_store.reset(self.pool)
        await self.fill(count, f"depth {count:,}: enqueue")
        await bench_store.vacuum_tasks(self.pool)
        self.record("depth_shallow", await self.drain_with_worker(count, f"depth {count:,}: drain"))

    async def depth_deep_fill(self) -> None:
        await bench_store.reset(self.pool)
        await self.fill(self.o.depth_n, f"depth {self.o.depth_n:,}: enqueue")

    async def depth_deep(self) -> None:
        count = self.o.depth_drain
        label = f"depth {self.o.depth_n:,}: drain"
        await bench_store.vacuum_tasks(self.pool)
        self.record("depth_deep", await self.drain_with_worker(count, label, rss_key="worker_rss"))
        await self.fill(count, f"depth {self.o.depth_n:,}: top up")

    async def run(self) -> None:
        pool = await db.create_pool(self.dsn, min_size=1, max_size=BULK_PRODUCERS + 2)
        self.pool = pool
        # One awaited call at a time, as a producer script would: the
        # TaskQueue keeps a connection rather than going through the pool for
        # each call, as TaskQueue.connect() does.
        self.tq = TaskQueue(
            pool, load_registry(["taskqueue.benchmark.handlers"]), reuse_connection=True
        )
        self.unchecked = TaskQueue(pool, registry=None)
        try:
            await bench_store.create_reference_table(pool)
            steps: dict[str, list[Callable[[], Any]]] = {
                "single": [self.single],
                "bulk": [self.bulk],
                "rest": [self.rest],
                "drain": [self.drain],
                "pickup": [self.pickup],
                "limited": [self.limited],
                "unknown": [self.unknown],
            }
            for rep in range(self.o.reps):
                for phase in self.o.phases:
                    for step in steps.get(phase, []):
                        self._say(f"rep {rep + 1}/{self.o.reps}: {phase}")
                        await step()
            if "depth" in self.o.phases:
                for rep in range(self.o.reps):
                    self._say(f"rep {rep + 1}/{self.o.reps}: depth {self.o.depth_drain:,}")
                    await self.depth_shallow()
                await self.depth_deep_fill()
                for rep in range(self.o.reps):
                    self._say(f"rep {rep + 1}/{self.o.reps}: depth {self.o.depth_n:,}")
                    await self.depth_deep()
            if "history" in self.o.phases:
                for rep in range(self.o.reps):
                    self._say(f"rep {rep + 1}/{self.o.reps}: history, empty database")
                    await history.drain_empty(self)
                self._say(f"history: loading {self.o.history_rows:,} finished tasks")
                await history.load(self)
                for rep in range(self.o.reps):
                    self._say(f"rep {rep + 1}/{self.o.reps}: history, {self.o.history_rows:,} kept")
                    await history.drain_with_history(self)
            if "workflow" in self.o.phases:
                for rep in range(self.o.reps):
                    self._say(f"rep {rep + 1}/{self.o.reps}: workflow")
                    await workflow.run(self)
            if "crash" in self.o.phases:  # once: its figures are sums over its runs
                self._say(f"crash: {self.o.crash_runs} graphs, kill -9 of a worker in each")
                await crash.run(self)
            for name, measure in claim_keys.PHASES.items():
                if name in self.o.phases:
                    for rep in range(self.o.reps):
                        self._say(f"rep {rep + 1}/{self.o.reps}: {name}")
                        await measure(self)
            if "pressure" in self.o.phases:
                for rep in range(self.o.reps):
                    self._say(f"rep {rep + 1}/{self.o.reps}: pressure")
                    self.pressure_runs.append(await run_pressure(self))
        finally:
            await self.tq.close()

    def _say(self, text: str) -> None:
        if not self.o.quiet:
            print(text, file=sys.stderr, flush=True)


async def _succeeded(tq: TaskQueue, task_id: uuid.UUID) -> bool:
    return (await tq.get(task_id)).status == "succeeded"


# -- server and database -------------------------------------------------------


@contextlib.asynccontextmanager
async def bench_database(options: Options, workdir: Path) -> AsyncIterator[tuple[str, str]]:
    """(DSN of a fresh, migrated database, description of the server); the
    database is dropped afterwards, and an embedded server stopped."""
    server = None
    admin = options.database_url
    if not admin:
        from taskqueue.embedded import EmbeddedPostgres

        # Durability stays as in production (fsync, synchronous_commit on);
        # only memory and checkpoint spacing are sized for a benchmark.
        server = EmbeddedPostgres(
            workdir / "pgdata",
            settings={
                "shared_buffers": "512MB",
                "max_wal_size": "4GB",
                "checkpoint_timeout": "30min",
                "max_connections": "200",
            },
        )
        admin = await asyncio.to_thread(server.start)
    name = f"taskqueue_bench_{secrets.token_hex(4)}"
    conn = await db.connect(admin)
    try:
        version = str(await conn.fetchval("SHOW server_version"))
        await bench_store.create_database(conn, name)
        dsn = with_database(admin, name)
        await asyncio.to_thread(db.migrate, dsn)
        kind = "embedded" if server else "DATABASE_URL"
        yield dsn, f"PostgreSQL {version} ({kind})"
    finally:
        with contextlib.suppress(Exception):
            await bench_store.drop_database(conn, name)
        await conn.close()
        if server is not None:
            await asyncio.to_thread(server.destroy)


async def run_benchmark(options: Options) -> Report:
    workdir = Path(tempfile.mkdtemp(prefix="taskqueue-bench-"))
    try:
        async with bench_database(options, workdir) as (dsn, server):
            bench = Bench(options, dsn, workdir)
            await bench.run()
        return Report(
            server=server,
            machine=machine(),
            options=options,
            figures=figures(bench.results, options),
            pressure=bench.pressure_runs,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
