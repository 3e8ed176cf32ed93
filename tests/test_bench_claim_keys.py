"""`taskqueue bench --phases fairness,sequences,keys` with tiny sizes: the
phases run real workers (killing two of them in the sequences phase) and
report their figures, with no overlap, order violation or audit violation
within a key and one running task per key at most."""

from __future__ import annotations

import asyncio
import os
import sys

import msgspec


async def test_the_claim_key_phases_run_and_report(pg_server: str) -> None:
    env = {**os.environ, "DATABASE_URL": pg_server}
    sizes = {
        "--fairness-backlog": "3000",
        "--fairness-tenants": "3",
        "--fairness-seconds": "0.5",
        "--sequence-keys": "20",
        "--sequence-length": "5",
        "--sequence-workers": "2",
        "--keys-n": "1000",
        "--keys-distinct": "50",
        "--keys-workers": "2",
        "--keys-concurrency": "5",
    }
    args = [arg for pair in sizes.items() for arg in pair]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "taskqueue.cli",
        "bench",
        "--json",
        "--reps",
        "1",
        "--phases",
        "fairness,sequences,keys",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    report = msgspec.json.decode(stdout)
    figures = {f["figure"]: f["median"] for f in report["figures"]}
    assert figures["3 tenants' pickup, p99"] > 0
    assert figures["overlaps within a key"] == 0
    assert figures["order violations within a key"] == 0
    assert figures["tasks not ended"] == 0
    assert figures["audit violations"] == 0
    assert figures["drain with 2 kills"] > 0
    assert figures["peak running per key (limit 1), sampled"] == 1
    assert figures["drain, 50 keys"] > 0
