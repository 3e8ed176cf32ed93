"""`taskqueue bench --phases fairness,sequences,keys` with tiny sizes: the
phases run real workers (killing two of them in the sequences phase) and
report their figures, with no overlap, order violation or audit violation
within a key and one running task per key at most."""

from __future__ import annotations

from tests.helpers import bench_report


async def test_the_claim_key_phases_run_and_report(pg_server: str) -> None:
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
    report = await bench_report(
        pg_server, "--phases", "fairness,sequences,keys", *args, timeout=300
    )
    figures = {name: f["median"] for name, f in report.items()}
    assert figures["3 tenants' pickup, p99"] > 0
    assert figures["overlaps within a key"] == 0
    assert figures["order violations within a key"] == 0
    assert figures["tasks not ended"] == 0
    assert figures["audit violations"] == 0
    assert figures["drain with 2 kills"] > 0
    assert figures["peak running per key (limit 1), sampled"] == 1
    assert figures["drain, 50 keys"] > 0
