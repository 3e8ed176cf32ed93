"""``taskqueue bench --phases pooling`` on a real PgBouncer: a small fleet
drains directly and through the pooler with nothing lost and no error in
the workers' logs, and the phase refuses company."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import pytest

from taskqueue.benchmark import pooling
from tests.pgbouncer import pgbouncer_binary


async def test_a_small_fleet_drains_through_pgbouncer_as_directly(
    pg_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pgbouncer_binary()  # skips (or fails in CI) without one
    monkeypatch.setenv("DATABASE_URL", pg_server)
    settings = pooling.Settings(
        workers=2, concurrency=5, tasks=600, pool_size=2, pickups=3, apis=1, rest_tasks=100
    )
    assert await pooling.main(settings) == 0
    out = capsys.readouterr().out

    def figure(name: str) -> str:
        found = re.search(rf"^\s+{re.escape(name)}\s+(.+)$", out, re.MULTILINE)
        assert found is not None, (name, out)
        return found.group(1).strip()

    assert float(figure("direct: drain (tasks/s)")) > 0
    assert float(figure("pgbouncer (pool 2): drain (tasks/s)")) > 0
    assert int(figure("pgbouncer: peak pooled server connections")) <= 2
    assert int(figure("pgbouncer: peak direct listeners")) == 2
    assert figure("pgbouncer: unfinished tasks") == "0"
    for logs in ("direct", "pgbouncer", "polling"):
        assert figure(f"{logs}: error lines in worker logs") == "0"
    p50, _ = figure("pgbouncer, no direct URL (polling): pickup p50 / p95 (ms)").split(" / ")
    assert int(p50) < 1000


async def test_the_pooling_phase_runs_on_its_own(pg_server: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskqueue.cli",
        "bench",
        "--phases",
        "pooling,drain",
        env={**os.environ, "DATABASE_URL": pg_server},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode != 0
    assert b"--phases pooling runs on its own" in stderr, stderr
