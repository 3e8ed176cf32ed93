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
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from taskqueue import db, store
from taskqueue.benchmark import store as bench_store
from taskqueue.client import TaskQueue
from taskqueue.models import NewTask, Outcome, OutcomeKind
from taskqueue.registry import load_registry

PHASES = ("single", "bulk", "rest", "drain", "limited", "pickup", "unknown", "depth")
LIMIT = 1000  # the concurrency limit of the limited-queue drain
UNKNOWN_AHEAD = 10_000  # tasks of a type the worker has no handler for, ahead in line
BULK_BATCH = 1000
REST_CONNECTIONS = 32
BATCH_CONNECTIONS = 4
REFERENCE_CLAIM_BATCH = 100
METRICS_SCRAPE_SECONDS = 0.5  # far more often than Prometheus would (15 s): the worst case
BULK_PRODUCERS = 4  # coroutines calling enqueue_many at once, a connection each


class Options(msgspec.Struct, kw_only=True):
    single_n: int = 5_000
    bulk_n: int = 100_000
    drain_n: int = 50_000
    pickup_n: int = 500
    depth_n: int = 1_000_000
    depth_drain: int = 20_000
    rest_seconds: float = 10.0
    reps: int = 3
    phases: tuple[str, ...] = PHASES
    database_url: str = ""
    quiet: bool = False
    load: str = "auto"  # REST load generator: wrk, python, or auto (wrk when installed)


class Figure(msgspec.Struct, kw_only=True):
    phase: str
    figure: str
    unit: str
    reps: list[float]
    median: float
    reference: str | None = None
    reference_reps: list[float] | None = None
    reference_median: float | None = None
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None


class Report(msgspec.Struct, kw_only=True):
    server: str
    machine: str
    options: Options
    figures: list[Figure]


# -- small tools ---------------------------------------------------------------


class Progress:
    """One line per phase on stderr, redrawn in place; silent when not a TTY."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()

    def show(self, label: str, done: float, total: float) -> None:
        if not self.enabled:
            return
        share = 0.0 if total <= 0 else min(1.0, done / total)
        bar = "#" * int(share * 30)
        sys.stderr.write(f"\r  {label:<28} [{bar:<30}] {share * 100:5.1f}%")
        if share >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()


class PeakRss:
    """Samples a process's resident memory every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def megabytes(self) -> float:
        return self.peak / (1024 * 1024)

    def cpu_seconds(self) -> float:
        """User and system CPU the process has used so far."""
        times = self._process.cpu_times()
        return float(times.user + times.system)


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskqueue.cli", *args], env=env, stdout=out, stderr=out
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _until(check: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"benchmark: {what} did not happen within {within:.0f}s")
        await asyncio.sleep(0.05)


# -- the run -------------------------------------------------------------------


class Bench:
    def __init__(self, options: Options, dsn: str, workdir: Path) -> None:
        self.o = options
        self.dsn = dsn
        self.workdir = workdir
        self.progress = Progress(options.quiet)
        self.results: dict[str, list[float]] = {}
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
            self.record("single_ref", n / (time.perf_counter() - started))
            self.progress.show("commit ceiling (reference)", n, n)
        started = time.perf_counter()
        for i in range(n):
            await self.tq.enqueue("noop", {"i": i})
            if i % 100 == 0:
                self.progress.show("enqueue, single", i, n)
        self.record("single", n / (time.perf_counter() - started))
        self.progress.show("enqueue, single", n, n)

    # phase 2 -------------------------------------------------------------------
    async def bulk(self) -> None:
        # One producer awaiting each call, then BULK_PRODUCERS at once: one
        # producer leaves the server idle while it prepares the next call.
        self.record("bulk", await self._bulk_rate(1, "enqueue, bulk"))
        label = f"enqueue, bulk, {BULK_PRODUCERS} producers"
        self.record("bulk_producers", await self._bulk_rate(BULK_PRODUCERS, label))

    async def _bulk_rate(self, producers: int, label: str) -> float:
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
                await self.tq.enqueue_many(batch)
                done += 1
                self.progress.show(label, done, len(batches))

        started = time.perf_counter()
        await asyncio.gather(*(producer(batches[k::producers]) for k in range(producers)))
        return n / (time.perf_counter() - started)

    # phases 3 and 4 ----------------------------------------------------------
    async def rest(self) -> None:
        await bench_store.reset(self.pool)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        with _process(["api"], self.env(TASKQUEUE_PORT=str(port)), self.log) as api:
            await _wait_http(f"{base}/ready", 60)
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
                    _wrk, url, body_file, connections, seconds, self.workdir
                )
            return await asyncio.to_thread(_python_load, url, body_file, connections, seconds)
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
        self.record("drain", await self._drain_with_worker(n, "drain: worker", key="drain"))

        # The same drain with the worker's Prometheus metrics on, and scraped.
        await bench_store.reset(self.pool)
        await self.fill(n, "drain, metrics on: enqueue (untimed)")
        port = _free_port()
        self.record(
            "drain_metrics",
            await self._drain_with_worker(
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

    async def _drain_with_worker(
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
            _process(["worker"], env or self.env(), self.log) as worker,
            PeakRss(worker.pid) as rss,
        ):
            scraping = asyncio.create_task(_scrape_every(scrape)) if scrape else None

            async def finished() -> bool:
                succeeded, _ = await bench_store.drain_progress(self.pool, since)
                self.progress.show(label, succeeded, count)
                if key and ((not marks and succeeded >= count // 10) or succeeded >= count):
                    marks.append((succeeded, rss.cpu_seconds()))
                return succeeded >= count

            try:
                await _until(finished, 600, f"{label} of {count} tasks")
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
        with _process(["worker"], env, self.log):
            # A first probe proves the worker listens; it is not measured.
            warmup = await self.tq.enqueue("bench_probe", {"sent_ns": time.time_ns()})
            await _until(lambda: _succeeded(self.tq, warmup.id), 60, "the worker's first pickup")
            await bench_store.reset(self.pool)
            for i in range(n):
                await self.tq.enqueue("bench_probe", {"sent_ns": time.time_ns()})
                self.progress.show("pickup latency", i + 1, n)
                await asyncio.sleep(0.01)

            async def all_done() -> bool:
                return len(await bench_store.probe_latencies(self.pool)) >= n

            await _until(all_done, 120, "every probe's pickup")
        latencies = [ns / 1e6 for ns in await bench_store.probe_latencies(self.pool)]
        for key, share in (("pickup_p50", 0.5), ("pickup_p95", 0.95), ("pickup_p99", 0.99)):
            self.record(key, _percentile(latencies, share))
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
            self.record("limited", await self._drain_with_worker(n, f"limit {LIMIT:,}: worker"))
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
        self.record("unknown_ref", await self._drain_with_worker(count, "no unknown types: drain"))
        await bench_store.reset(self.pool)
        label = f"{UNKNOWN_AHEAD:,} unknown ahead"
        await self.fill(UNKNOWN_AHEAD, f"{label}: enqueue", task_type="bench_unknown", priority=1)
        await self.fill(count, f"{label}: enqueue")
        await bench_store.vacuum_tasks(self.pool)
        self.record("unknown", await self._drain_with_worker(count, f"{label}: drain"))

    # phase 8 and 9 -----------------------------------------------------------
    async def depth_shallow(self) -> None:
        count = self.o.depth_drain
        await bench_store.reset(self.pool)
        await self.fill(count, f"depth {count:,}: enqueue")
        await bench_store.vacuum_tasks(self.pool)
        self.record(
            "depth_shallow", await self._drain_with_worker(count, f"depth {count:,}: drain")
        )

    async def depth_deep_fill(self) -> None:
        await bench_store.reset(self.pool)
        await self.fill(self.o.depth_n, f"depth {self.o.depth_n:,}: enqueue")

    async def depth_deep(self) -> None:
        count = self.o.depth_drain
        label = f"depth {self.o.depth_n:,}: drain"
        await bench_store.vacuum_tasks(self.pool)
        self.record("depth_deep", await self._drain_with_worker(count, label, rss_key="worker_rss"))
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
        finally:
            await self.tq.close()

    def _say(self, text: str) -> None:
        if not self.o.quiet:
            print(text, file=sys.stderr, flush=True)


async def _succeeded(tq: TaskQueue, task_id: uuid.UUID) -> bool:
    return (await tq.get(task_id)).status == "succeeded"


async def _scrape_every(url: str) -> None:
    """GET ``url`` every METRICS_SCRAPE_SECONDS, as Prometheus would (more often)."""
    import httpx

    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                (await client.get(url)).raise_for_status()
            await asyncio.sleep(METRICS_SCRAPE_SECONDS)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_http(url: str, within: float) -> None:
    import httpx

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(url)).status_code == 200
        except httpx.TransportError:
            return False

    await _until(answers, within, f"{url} answering")


def _wrk(
    url: str, body_file: Path, connections: int, seconds: float, workdir: Path
) -> tuple[float, float, float, int]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = io.open({str(body_file)!r}, 'rb'):read('*a')\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    return _parse_wrk(out)


def _parse_wrk(out: str) -> tuple[float, float, float, int]:
    rate = p50 = p99 = 0.0
    errors = 0
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            rate = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            value = _wrk_ms(parts[1])
            p50, p99 = (value, p99) if parts[0] == "50%" else (p50, value)
        elif "Non-2xx or 3xx responses:" in line:
            errors += int(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            errors += sum(int(p.rstrip(",")) for p in parts if p.rstrip(",").isdigit())
    return rate, p50, p99, errors


def _wrk_ms(text: str) -> float:
    for suffix, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _python_load(
    url: str, body_file: Path, connections: int, seconds: float
) -> tuple[float, float, float, int]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskqueue.benchmark.http_load",
            url,
            "--body-file",
            str(body_file),
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    ).stdout
    result = msgspec.json.decode(out.strip().splitlines()[-1])
    latencies = result["latencies_ms"] or [0.0]
    return (
        result["requests"] / result["seconds"],
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
        result["errors"],
    )


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
        dsn = _with_database(admin, name)
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
            server=server, machine=_machine(), options=options, figures=figures(bench.results)
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def rest_load_generator(options: Options) -> str:
    if options.load == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return options.load


def _machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


# -- the report ----------------------------------------------------------------

# (key, phase, figure, unit, reference key, reference name, target text, met?)
_ROWS: list[
    tuple[
        str,
        str,
        str,
        str,
        str | None,
        str | None,
        str | None,
        Callable[[float, float | None], bool] | None,
    ]
] = [
    (
        "single",
        "1 enqueue, single",
        "tasks/s",
        "tasks/s",
        "single_ref",
        "single-row INSERT commits",
        ">= 80% of reference",
        lambda v, r: r is not None and v >= 0.8 * r,
    ),
    (
        "bulk",
        "2 enqueue, bulk",
        "tasks/s, 1 producer",
        "tasks/s",
        "single_ref",
        "single-row INSERT commits",
        ">= 100,000/s",
        lambda v, r: v >= 100_000,
    ),
    (
        "bulk_producers",
        "2 enqueue, bulk",
        f"tasks/s, {BULK_PRODUCERS} producers",
        "tasks/s",
        "bulk",
        "1 producer",
        ">= 100,000/s",
        lambda v, r: v >= 100_000,
    ),
    (
        "rest_single",
        "3 REST, single",
        "tasks/s",
        "tasks/s",
        "single_ref",
        "single-row INSERT commits",
        ">= 5,000/s",
        lambda v, r: v >= 5_000,
    ),
    ("rest_p50", "3 REST, single", "p50", "ms", None, None, None, None),
    ("rest_p99", "3 REST, single", "p99", "ms", None, None, "<= 25 ms", lambda v, r: v <= 25),
    (
        "rest_batch",
        "4 REST, batch",
        "tasks/s",
        "tasks/s",
        "bulk",
        "enqueue_many (phase 2)",
        ">= 50,000/s",
        lambda v, r: v >= 50_000,
    ),
    (
        "drain",
        "5 drain",
        "tasks/s",
        "tasks/s",
        "drain_ref",
        "SQL ceiling, batch 100",
        ">= 15,000/s",
        lambda v, r: v >= 15_000,
    ),
    (
        "drain_metrics",
        "5 drain",
        f"tasks/s, metrics on (scraped every {METRICS_SCRAPE_SECONDS:g} s)",
        "tasks/s",
        "drain",
        "drain, metrics off",
        ">= 95% of reference",
        lambda v, r: r is not None and v >= 0.95 * r,
    ),
    (
        "drain_metrics_cpu",
        "5 drain",
        "worker CPU per task, metrics on",
        "µs",
        "drain_cpu",
        "metrics off",
        "<= 105% of reference",
        lambda v, r: r is not None and v <= 1.05 * r,
    ),
    ("pickup_p50", "6 pickup latency", "p50", "ms", None, None, "<= 2 ms", lambda v, r: v <= 2),
    ("pickup_p95", "6 pickup latency", "p95", "ms", None, None, None, None),
    ("pickup_p99", "6 pickup latency", "p99", "ms", None, None, "<= 4 ms", lambda v, r: v <= 4),
    ("pickup_max", "6 pickup latency", "max", "ms", None, None, None, None),
    (
        "limited",
        "5 drain",
        f"tasks/s, concurrency limit {LIMIT:,}",
        "tasks/s",
        "drain",
        "drain, no limit",
        ">= 90% of reference",
        lambda v, r: r is not None and v >= 0.9 * r,
    ),
    (
        "unknown",
        "7 unknown types",
        f"drain, {UNKNOWN_AHEAD:,} unknown ahead",
        "tasks/s",
        "unknown_ref",
        "drain, none ahead",
        ">= 90% of reference",
        lambda v, r: r is not None and v >= 0.9 * r,
    ),
    (
        "depth_deep",
        "8 depth",
        "drain, deep queue",
        "tasks/s",
        "depth_shallow",
        "drain, shallow queue",
        ">= 90% of reference",
        lambda v, r: r is not None and v >= 0.9 * r,
    ),
    (
        "worker_rss",
        "9 memory",
        "worker peak RSS (phase 8)",
        "MB",
        None,
        None,
        "<= 100 MB",
        lambda v, r: v <= 100,
    ),
    (
        "drain_metrics_rss",
        "9 memory",
        "worker peak RSS, metrics on (phase 5)",
        "MB",
        "drain_rss",
        "metrics off",
        "<= 100 MB",
        lambda v, r: v <= 100,
    ),
    (
        "api_rss",
        "9 memory",
        "API peak RSS (phase 3)",
        "MB",
        None,
        None,
        "<= 150 MB",
        lambda v, r: v <= 150,
    ),
]


def figures(results: dict[str, list[float]]) -> list[Figure]:
    found: list[Figure] = []
    for key, phase, figure, unit, ref_key, ref_name, target, met in _ROWS:
        values = results.get(key)
        if not values:
            continue
        median = statistics.median(values)
        ref_values = results.get(ref_key) if ref_key else None
        ref_median = statistics.median(ref_values) if ref_values else None
        found.append(
            Figure(
                phase=phase,
                figure=figure,
                unit=unit,
                reps=values,
                median=median,
                reference=ref_name if ref_values else None,
                reference_reps=ref_values,
                reference_median=ref_median,
                ratio=median / ref_median if ref_median else None,
                target=target,
                met=met(median, ref_median) if met else None,
            )
        )
    return found


def render_table(report: Report) -> str:
    def number(value: float | None, unit: str = "") -> str:
        if value is None:
            return "—"
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
        return f"{text} {unit}".strip()

    header = ("phase", "figure", "median", "reference (median)", "ratio", "target", "met")
    rows = [header]
    for f in report.figures:
        reference = f"{f.reference}: {number(f.reference_median, f.unit)}" if f.reference else "—"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
        met = "—" if f.met is None else ("yes" if f.met else "NO")
        rows.append(
            (f.phase, f.figure, number(f.median, f.unit), reference, ratio, f.target or "—", met)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    footer = (
        f"{report.server}; {report.machine}; medians of {report.options.reps} reps; "
        f"REST load from {rest_load_generator(report.options)}"
    )
    return "\n".join([*lines, "", footer])
