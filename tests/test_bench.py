"""A smoke run of `taskqueue bench` with tiny sizes, so the benchmark cannot rot."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import msgspec

from taskqueue.benchmark.http_load import build_request, read_response


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
