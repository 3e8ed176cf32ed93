"""A smoke run of `taskqueue bench` with tiny sizes, so the benchmark cannot
rot; short runs of the history and pressure phases (their shape, and that the
pressure phase really holds the vacuum horizon and always lets it go)."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import msgspec
import pytest

from taskqueue.benchmark.http_load import build_request, read_response
from taskqueue.benchmark.options import Options
from taskqueue.benchmark.runner import Bench
from tests.helpers import bench_report, run_audit


async def test_bench_runs_every_phase_and_drops_its_database(pg_server: str) -> None:
    env = {**os.environ, "DATABASE_URL": pg_server}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskqueue.cli",
        "bench",
        "--json",
        "--reps",
        "1",
        "--single-n",
        "100",
        "--bulk-n",
        "2000",
        "--drain-n",
        "1000",
        "--pickup-n",
        "20",
        "--depth-n",
        "3000",
        "--depth-drain",
        "500",
        "--rest-seconds",
        "1",
        # The built-in load generator, which is what runs wherever wrk is not
        # installed (CI among them).
        "--load",
        "python",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    report = msgspec.json.decode(stdout)
    figures = {(f["phase"], f["figure"]): f for f in report["figures"]}
    phases = {phase.split(" ", 1)[0] for phase, _ in figures}
    assert phases == {"1", "2", "3", "4", "5", "6", "7", "8", "9"}
    for figure in figures.values():
        assert figure["median"] > 0, figure
        assert len(figure["reps"]) == 1
    drain = figures[("5 drain", "tasks/s")]
    assert drain["reference"] == "SQL ceiling, batch 100"
    assert drain["reference_median"] > 0
    assert drain["ratio"] == drain["median"] / drain["reference_median"]
    unknown = figures[("7 unknown types", "drain, 10,000 unknown ahead")]
    assert unknown["reference"] == "drain, none ahead"
    single = figures[("1 enqueue, single", "tasks/s")]
    assert single["met"] in (True, False)
    assert "PostgreSQL" in report["server"]
    assert report["options"]["load"] == "python"

    conn = await asyncpg.connect(pg_server)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'taskqueue_bench_%'"
        )
    finally:
        await conn.close()
    assert left == 0


async def test_the_load_generator_reads_keep_alive_responses_back_to_back() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(
        b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
        b'Content-Length: 11\r\n\r\n{"id": "a"}'
        b"HTTP/1.1 413 Request Entity Too Large\r\ncontent-length: 2\r\n\r\n{}"
    )
    assert await read_response(reader) == 201
    assert await read_response(reader) == 413
    request = build_request("http://127.0.0.1:8000/api/tasks", b"{}", "secret")
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/tasks HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n")
    assert b"Content-Length: 2" in head and b"Authorization: Bearer secret" in head
    assert body == b"{}"


def _short_pressure(**sizes: float) -> Options:
    short = Options(
        reps=1,
        phases=("pressure",),
        quiet=True,
        pressure_rate=200.0,
        pressure_clean=10.0,
        pressure_pinned=10.0,
        pressure_recovery=10.0,
        pressure_window=5.0,
    )
    return msgspec.structs.replace(short, **sizes)


async def _pinning_sessions(conn: asyncpg.Connection, database: str) -> int:
    """Sessions of ``database`` idle in a transaction that holds an XID."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
            " AND state = 'idle in transaction' AND backend_xid IS NOT NULL",
            database,
        )
    )


async def test_the_pressure_phase_holds_the_horizon_while_pinned_and_releases_it(
    database_url: str, tmp_path: Path
) -> None:
    bench = Bench(_short_pressure(), database_url, tmp_path)
    await bench.run()
    [run] = bench.pressure_runs
    stages = [w.stage for w in run.windows]
    assert stages == ["clean"] * 2 + ["pinned"] * 2 + ["recovery"] * 2
    assert [(w.start_s, w.end_s) for w in run.windows][:3] == [(0, 5), (5, 10), (10, 15)]
    for w in run.windows:
        assert w.offered_per_s > 0 and w.completed_per_s > 0, w
        assert w.p50_ms is not None and w.p99_ms is not None and w.p50_ms <= w.p99_ms
        assert w.backlog >= 0 and w.tasks_index_mb > 0
        # The pinning session held its XID exactly through the pinned stage.
        assert (w.pinned_xid is not None) == (w.stage == "pinned"), w
        assert w.pinned_xid == (str(run.pin_xid) if w.stage == "pinned" else None)
    assert [s.stage for s in run.stages] == [
        "clean",
        "pinned",
        "recovery",
        "pinned, last 10 s",
        "recovery, last 5 s",
    ]
    # Nothing that died while pinned could be vacuumed: each task finished
    # then left at least two dead versions (claimed, then finished).
    pinned_end = [w for w in run.windows if w.stage == "pinned"][-1]
    assert pinned_end.tasks_dead >= 0.5 * run.stages[1].completed_per_s * 10
    clean_p99, tail_p99 = run.stages[0].p99_ms, run.stages[3].p99_ms
    assert clean_p99 is not None and tail_p99 is not None
    assert run.pinned_tail_over_clean_p99 == tail_p99 / clean_p99
    assert run.released and not run.producer_behind
    assert 0.8 * 200 <= run.stages[0].offered_per_s <= 1.2 * 200  # paced, not flat out
    keys = {"pressure_clean_p99", "pressure_pinned_p99", "pressure_recovery_p99"}
    assert keys <= set(bench.results)

    conn = await asyncpg.connect(database_url)
    try:
        assert run.pin_pid is not None
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", run.pin_pid
        )
        assert left == 0
        database = await conn.fetchval("SELECT current_database()")
        assert await _pinning_sessions(conn, database) == 0
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        assert await run_audit(pool) == []
    finally:
        await pool.close()


async def test_the_pressure_phase_lets_the_horizon_go_when_cancelled(
    database_url: str, tmp_path: Path
) -> None:
    bench = Bench(
        _short_pressure(pressure_clean=1.0, pressure_pinned=120.0, pressure_window=1.0),
        database_url,
        tmp_path,
    )
    conn = await asyncpg.connect(database_url)
    try:
        database = await conn.fetchval("SELECT current_database()")
        running = asyncio.create_task(bench.run())
        deadline = time.monotonic() + 60
        while await _pinning_sessions(conn, database) == 0:
            assert not running.done(), running
            assert time.monotonic() < deadline, "the pinned stage never began"
            await asyncio.sleep(0.1)
        running.cancel()  # what Ctrl-C does to the bench's main task
        with pytest.raises(asyncio.CancelledError):
            await running
        assert await _pinning_sessions(conn, database) == 0
    finally:
        await conn.close()


async def test_pickup_latency_stays_bounded_while_the_horizon_is_pinned(
    database_url: str, tmp_path: Path
) -> None:
    bench = Bench(
        _short_pressure(
            pressure_rate=1000.0, pressure_clean=15.0, pressure_pinned=60.0, pressure_recovery=5.0
        ),
        database_url,
        tmp_path,
    )
    await bench.run()
    [run] = bench.pressure_runs
    clean, pinned, _, pinned_tail, _ = run.stages
    late = [w for w in run.windows if w.stage == "pinned"][-2:]  # the last 10 s pinned
    assert clean.p50_ms is not None and clean.p99_ms is not None
    assert pinned_tail.p99_ms is not None
    # Ratios with a floor: absolute speeds belong to the bench, and a noisy
    # 2-core machine moves a latency of a few milliseconds by a few more. A
    # claim that walks dead rows fails the p50 here: it climbs while the
    # horizon is held (on the test server about 1 ms clean, 8-15 ms after
    # 50-60 s pinned at 1,000/s), where the p99 of a clean stage on a shared
    # machine is too noisy to tell on its own.
    for w in late:
        assert w.p50_ms is not None and w.p50_ms <= 3 * clean.p50_ms + 2, run.windows
    # The tail's p99 is read per window and the median taken: one window's
    # burst (a checkpoint, a neighbour on the two cores) once lifted the p99
    # of the whole last minute to 20 ms while its p50 stayed at 2 ms, where a
    # climb lifts every late window.
    tail = [w.p99_ms for w in run.windows if w.stage == "pinned"][-6:]  # the last 30 s
    assert all(p99 is not None for p99 in tail), run.windows
    assert statistics.median(p for p in tail if p is not None) <= 3 * clean.p99_ms + 10, tail
    assert pinned.completed_over_offered is not None and pinned.completed_over_offered >= 0.95


async def test_the_history_phase_drains_with_and_without_history(
    database_url: str, tmp_path: Path
) -> None:
    options = Options(reps=1, phases=("history",), quiet=True, history_rows=20_000, drain_n=1_000)
    bench = Bench(options, database_url, tmp_path)
    await bench.run()
    for key in ("history", "history_ref", "history_queues", "history_ref_queues"):
        [value] = bench.results[key]
        assert value > 0, key
    conn = await asyncpg.connect(database_url)
    try:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM taskqueue.tasks WHERE status = 'succeeded') AS tasks,"
            " (SELECT count(*) FROM taskqueue.task_events) AS events"
        )
    finally:
        await conn.close()
    assert counts is not None
    assert counts["tasks"] == 20_000 + 1_000  # the history, then the drain measured with it
    assert counts["events"] == 3 * (20_000 + 1_000)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        assert await run_audit(pool) == []  # loaded history has sound trails too
        # ... and was sealed before the drain, as a history that grew over time
        # would have been (56 bytes a sealed event).
        sealed = await pool.fetchval(
            "SELECT sum(length(entries) / 56) FROM taskqueue.history_links"
        )
        assert sealed >= 3 * 20_000
    finally:
        await pool.close()


async def test_bench_refuses_a_pressure_rate_that_is_no_rate(pg_server: str) -> None:
    env = {**os.environ, "DATABASE_URL": pg_server}
    for rate in ("fast", "0", "-5%"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskqueue.cli",
            "bench",
            "--phases",
            "pressure",
            "--pressure-rate",
            rate,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode != 0, rate
        assert b"--pressure-rate" in stderr, stderr


async def test_the_workflow_phase_measures_accept_drain_and_paced_release(pg_server: str) -> None:
    figures = await bench_report(
        pg_server, "--phases", "workflow", "--workflow-width", "10", timeout=180
    )
    drain = figures["drain the graph"]
    assert drain["median"] > 0 and drain["reference_median"] > 0
    for name in (
        "accept a 200-task graph (20 layers, 3 parents each)",
        "parent done -> child start (paced pairs), p50",
        "parent done -> child start (paced pairs), p99",
        "same inside the graph's drain (queued behind its layer), p99",
    ):
        assert figures[name]["median"] > 0, name


async def test_the_crash_phase_kills_workers_mid_graph_and_finds_nothing_broken(
    pg_server: str,
) -> None:
    figures = await bench_report(pg_server, "--phases", "crash", "--crash-runs", "1", timeout=240)
    for name in (
        "waiting with every parent terminal, 1 kill -9 runs",
        "children started before a parent succeeded",
        "taskqueue audit violations",
    ):
        assert figures[name]["median"] == 0, name
        assert figures[name]["met"] is True, name
    assert figures["kill -9 of a worker holding tasks"]["median"] == 3
