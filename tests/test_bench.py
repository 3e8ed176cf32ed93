"""A smoke run of `taskqueue bench` with tiny sizes, so the benchmark cannot rot."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import msgspec


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
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    report = msgspec.json.decode(stdout)
    figures = {(f["phase"], f["figure"]): f for f in report["figures"]}
    phases = {phase.split(" ", 1)[0] for phase, _ in figures}
    assert phases == {"1", "2", "3", "4", "5", "6", "7", "8"}
    for figure in figures.values():
        assert figure["median"] > 0, figure
        assert len(figure["reps"]) == 1
    drain = figures[("5 drain", "tasks/s")]
    assert drain["reference"] == "SQL ceiling, batch 100"
    assert drain["reference_median"] > 0
    assert drain["ratio"] == drain["median"] / drain["reference_median"]
    single = figures[("1 enqueue, single", "tasks/s")]
    assert single["met"] in (True, False)
    assert "PostgreSQL" in report["server"]

    conn = await asyncpg.connect(pg_server)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'taskqueue_bench_%'"
        )
    finally:
        await conn.close()
    assert left == 0
